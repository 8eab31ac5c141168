# Sourced by the benchmarks: start_garage DIR starts a single-node garage (a real S3
# server) with its data in DIR and sets ENDPOINT, GARAGE_PID and the AWS_* variables
# for its default bucket `bench`; it is stopped by stop_garage.
start_garage() {
  local dir=$1
  local garage
  garage=$(command -v garage || echo "$HOME/.cargo/bin/garage")
  free_port() { python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
  local s3_port rpc_port admin_port
  s3_port=$(free_port); rpc_port=$(free_port); admin_port=$(free_port)
  mkdir -p "$dir"
  cat > "$dir/garage.toml" <<CONF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(printf 'cd%.0s' {1..32})"
[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:$admin_port"
admin_token = "bench-admin-token"
CONF
  export AWS_ACCESS_KEY_ID=GK0123456789abcdef01234567
  export AWS_SECRET_ACCESS_KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  GARAGE_DEFAULT_ACCESS_KEY=$AWS_ACCESS_KEY_ID GARAGE_DEFAULT_SECRET_KEY=$AWS_SECRET_ACCESS_KEY \
    GARAGE_DEFAULT_BUCKET=bench RUST_LOG=warn "$garage" -c "$dir/garage.toml" server --single-node --default-bucket \
    > "$dir/garage.log" 2>&1 &
  GARAGE_PID=$!
  ENDPOINT="http://127.0.0.1:$s3_port"
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null && break
    sleep 0.2
  done
  sleep 1
}

stop_garage() { kill "$GARAGE_PID" 2>/dev/null || true; }
