//! Real S3 and AWS control-plane servers on free loopback ports: garage (S3) and
//! moto_server (S3, RDS, Route 53). Each is killed when its handle drops.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dr_aws::{AwsConfig, S3Config};

/// The access key garage is started with.
pub const GARAGE_KEY_ID: &str = "GK0123456789abcdef01234567";
/// Its secret.
pub const GARAGE_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The bucket every garage instance starts with.
pub const BUCKET: &str = "drkit";

/// A free TCP port on 127.0.0.1.
#[must_use]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on {port} within 30 s");
}

fn find_binary(env: &str, names: &[PathBuf]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    names.iter().find(|p| p.is_file()).cloned()
}

/// The virtualenv scripts/setup fills (moto, maturin, pytest).
#[must_use]
pub fn venv() -> PathBuf {
    std::env::var_os("DRKIT_VENV")
        .map_or_else(|| PathBuf::from("/var/tmp/drkit-venv"), PathBuf::from)
}

/// A running single-node garage with bucket `drkit`.
pub struct Garage {
    child: Child,
    /// The S3 port.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Garage {
    /// Starts garage, or returns `None` (locally) when it is not installed.
    #[must_use]
    pub fn start() -> Option<Self> {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        let Some(bin) = find_binary(
            "GARAGE_BIN",
            &[
                home.join(".cargo/bin/garage"),
                PathBuf::from("/usr/local/bin/garage"),
            ],
        ) else {
            crate::missing(
                "garage",
                "run `scripts/setup --services` (cargo install garage --locked --version 2.5.0)",
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let (s3, rpc, admin) = (free_port(), free_port(), free_port());
        let conf = dir.path().join("garage.toml");
        std::fs::write(
            &conf,
            format!(
                r#"metadata_dir = "{d}/meta"
data_dir = "{d}/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"
[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "test-admin-token"
"#,
                d = dir.path().display(),
                secret = "ab".repeat(32),
            ),
        )
        .unwrap();
        let mut child = Command::new(bin)
            .args([
                "-c",
                conf.to_str().unwrap(),
                "server",
                "--single-node",
                "--default-bucket",
            ])
            .env("GARAGE_DEFAULT_ACCESS_KEY", GARAGE_KEY_ID)
            .env("GARAGE_DEFAULT_SECRET_KEY", GARAGE_SECRET)
            .env("GARAGE_DEFAULT_BUCKET", BUCKET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("garage.log")).unwrap(),
            ))
            .spawn()
            .unwrap();
        wait_for_port(s3, &mut child, "garage");
        let g = Self {
            child,
            port: s3,
            _dir: dir,
        };
        g.wait_for_bucket();
        Some(g)
    }

    fn wait_for_bucket(&self) {
        // Its own thread and runtime: callers may already be inside one.
        let aws = self.aws();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let client = rt.block_on(s3_client(&aws));
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match rt.block_on(client.list_objects_v2().bucket(BUCKET).send()) {
                    Ok(_) => return,
                    Err(e) if Instant::now() > deadline => {
                        panic!(
                            "garage bucket not ready: {}",
                            aws_sdk_s3::error::DisplayErrorContext(&e)
                        )
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        })
        .join()
        .unwrap();
    }

    /// `http://127.0.0.1:port`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connection settings with garage's key.
    #[must_use]
    pub fn aws(&self) -> AwsConfig {
        aws_for(&self.endpoint(), GARAGE_KEY_ID, GARAGE_SECRET)
    }

    /// A store config for `prefix` in bucket `drkit`.
    #[must_use]
    pub fn s3(&self, prefix: &str) -> S3Config {
        let mut c = S3Config::new(BUCKET, prefix);
        c.aws = self.aws();
        c
    }

    /// An `s3://` URL for `prefix` (credentials go in the environment: see [`Garage::env`]).
    #[must_use]
    pub fn url(&self, prefix: &str) -> String {
        format!(
            "s3://{BUCKET}/{prefix}?endpoint={}&region=us-east-1",
            self.endpoint()
        )
    }

    /// Environment variables a `drkit` process needs to reach this server.
    #[must_use]
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", GARAGE_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", GARAGE_SECRET.to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
        ]
    }

    /// A separate SDK client, for reading back what drkit wrote.
    pub async fn client(&self) -> aws_sdk_s3::Client {
        s3_client(&self.aws()).await
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn aws_for(endpoint: &str, key: &str, secret: &str) -> AwsConfig {
    let mut c = AwsConfig::default()
        .with_endpoint(endpoint)
        .with_region("us-east-1")
        .with_credentials(key, secret);
    c.attempt_timeout = Duration::from_secs(20);
    c
}

/// An S3 client for `aws`, path-style.
pub async fn s3_client(aws: &AwsConfig) -> aws_sdk_s3::Client {
    let sdk = aws.load().await.unwrap();
    let conf = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// moto_server with one behaviour made to match AWS: `PromoteReadReplica` leaves moto's
/// instance linked to its source forever, where RDS unlinks it once promoted. drkit
/// counts a replica as promoted only when RDS says it no longer has a source, so the
/// tests run moto the way AWS behaves rather than drkit bending to moto.
const MOTO_AS_AWS: &str = include_str!("../moto_as_aws.py");

/// A running moto_server (S3, RDS, Route 53 in memory).
pub struct Moto {
    child: Child,
    /// Its port.
    pub port: u16,
}

impl Moto {
    /// Starts moto_server from the drkit virtualenv, or returns `None` (locally) when it
    /// is not installed.
    #[must_use]
    pub fn start() -> Option<Self> {
        let python = venv().join("bin/python");
        if !venv().join("bin/moto_server").is_file() || !python.is_file() {
            crate::missing("moto_server >= 5.2.5", "run `scripts/setup --services`");
            return None;
        }
        let port = free_port();
        let mut child = Command::new(python)
            .args([
                "-c",
                MOTO_AS_AWS,
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, &mut child, "moto_server");
        Some(Self { child, port })
    }

    /// `http://127.0.0.1:port`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connection settings (moto takes any key) in `region`.
    #[must_use]
    pub fn aws(&self, region: &str) -> AwsConfig {
        aws_for(&self.endpoint(), "testing", "testing").with_region(region)
    }

    /// Creates hosted zone `zone` with a failover pair of CNAMEs for `name`: set `primary`
    /// (PRIMARY) and set `secondary` (SECONDARY), each `(set id, value)`, made with a
    /// separate SDK client. Returns the client, for reading back.
    pub async fn failover_pair(
        &self,
        zone: &str,
        name: &str,
        primary: (&str, &str),
        secondary: (&str, &str),
    ) -> aws_sdk_route53::Client {
        use aws_sdk_route53::types::{
            Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet,
            ResourceRecordSetFailover, RrType,
        };
        let sdk = self.aws("us-east-1").load().await.unwrap();
        let r53 = aws_sdk_route53::Client::new(&sdk);
        let created = r53
            .create_hosted_zone()
            .name(zone)
            .caller_reference(format!("{zone}-{name}"))
            .send()
            .await
            .unwrap();
        let zone_id = created.hosted_zone().unwrap().id().to_owned();
        let rec = |(set, value): (&str, &str), role: &str| {
            Change::builder()
                .action(ChangeAction::Create)
                .resource_record_set(
                    ResourceRecordSet::builder()
                        .name(format!("{name}."))
                        .r#type(RrType::Cname)
                        .set_identifier(set)
                        .failover(ResourceRecordSetFailover::from(role))
                        .ttl(30)
                        .resource_records(ResourceRecord::builder().value(value).build().unwrap())
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap()
        };
        r53.change_resource_record_sets()
            .hosted_zone_id(zone_id)
            .change_batch(
                ChangeBatch::builder()
                    .changes(rec(primary, "PRIMARY"))
                    .changes(rec(secondary, "SECONDARY"))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        r53
    }

    /// The set identifier of the PRIMARY record of the failover pair in the first hosted
    /// zone, read with a separate SDK client: where traffic goes.
    pub async fn failover_primary(&self) -> Option<String> {
        use aws_sdk_route53::types::ResourceRecordSetFailover;
        let sdk = self.aws("us-east-1").load().await.unwrap();
        let r53 = aws_sdk_route53::Client::new(&sdk);
        let zone = r53.list_hosted_zones().send().await.unwrap().hosted_zones()[0]
            .id()
            .to_owned();
        let sets = r53
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .send()
            .await
            .unwrap();
        sets.resource_record_sets()
            .iter()
            .find(|r| r.failover().map(ResourceRecordSetFailover::as_str) == Some("PRIMARY"))
            .and_then(|r| r.set_identifier().map(str::to_owned))
    }

    /// Creates buckets `source` and `replica`, both versioned, and a replication rule
    /// `rule` from the first to the second (moto records it; it does not replicate).
    pub async fn replicated_buckets(&self, source: &str, replica: &str, rule: &str) {
        use aws_sdk_s3::types::{
            BucketVersioningStatus, Destination, ReplicationConfiguration, ReplicationRule,
            ReplicationRuleStatus, VersioningConfiguration,
        };
        let s3 = s3_client(&self.aws("us-east-1")).await;
        for b in [source, replica] {
            s3.create_bucket().bucket(b).send().await.unwrap();
            s3.put_bucket_versioning()
                .bucket(b)
                .versioning_configuration(
                    VersioningConfiguration::builder()
                        .status(BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
        let to = Destination::builder()
            .bucket(format!("arn:aws:s3:::{replica}"))
            .build()
            .unwrap();
        let rule = ReplicationRule::builder()
            .id(rule)
            .status(ReplicationRuleStatus::Enabled)
            .priority(1)
            .destination(to)
            .build()
            .unwrap();
        s3.put_bucket_replication()
            .bucket(source)
            .replication_configuration(
                ReplicationConfiguration::builder()
                    .role("arn:aws:iam::123456789012:role/replication")
                    .rules(rule)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }

    /// Writes object `key` with `body` into `bucket`.
    pub async fn put_object(&self, bucket: &str, key: &str, body: &str) {
        s3_client(&self.aws("us-east-1"))
            .await
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(
                body.as_bytes().to_vec(),
            ))
            .send()
            .await
            .unwrap();
    }

    /// Creates RDS instance `primary` (postgres) in us-east-1 and its read replica
    /// `replica`, with a separate SDK client, which it returns for reading back.
    pub async fn rds_primary_with_replica(
        &self,
        primary: &str,
        replica: &str,
    ) -> aws_sdk_rds::Client {
        let sdk = self.aws("us-east-1").load().await.unwrap();
        let rds = aws_sdk_rds::Client::new(&sdk);
        rds.create_db_instance()
            .db_instance_identifier(primary)
            .engine("postgres")
            .db_instance_class("db.t3.micro")
            .allocated_storage(20)
            .master_username("app")
            .master_user_password("secret-pw-123")
            .send()
            .await
            .unwrap();
        rds.create_db_instance_read_replica()
            .db_instance_identifier(replica)
            .source_db_instance_identifier(primary)
            .send()
            .await
            .unwrap();
        rds
    }

    /// Creates `bucket` and returns a store config for `prefix` in it.
    pub async fn bucket(&self, bucket: &str, prefix: &str) -> S3Config {
        let client = s3_client(&self.aws("us-east-1")).await;
        client.create_bucket().bucket(bucket).send().await.unwrap();
        let mut c = S3Config::new(bucket, prefix);
        c.aws = self.aws("us-east-1");
        c
    }

    /// Environment variables a `drkit` process needs to reach this server.
    #[must_use]
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
