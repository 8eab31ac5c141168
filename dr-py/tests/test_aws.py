"""drkit.Rds, drkit.Route53 and S3 repositories from Python, against moto_server."""

import os
import socket
import subprocess
import sys
import time

import boto3
import pytest

import drkit

CREDS = {"access_key_id": "testing", "secret_access_key": "testing"}


@pytest.fixture(scope="module")
def moto():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # moto_server, with promotion unlinking the replica as RDS does (see the script).
    launcher = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "testkit", "moto_as_aws.py")
    proc = subprocess.Popen(
        [sys.executable, launcher, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield endpoint
    proc.kill()
    proc.wait()


def client(service, endpoint, region="us-east-1"):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_rds_replica_promotion_and_pitr(moto):
    east = client("rds", moto)
    east.create_db_instance(
        DBInstanceIdentifier="py-primary",
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        MasterUsername="app",
        MasterUserPassword="secret-pw-123",
    )
    arn = east.describe_db_instances(DBInstanceIdentifier="py-primary")["DBInstances"][0]["DBInstanceArn"]
    west = drkit.Rds(region="us-west-2", endpoint=moto, **CREDS)
    replica = west.create_read_replica(arn, "py-dr", timeout=30)
    assert replica["replication_source"] == arn
    seen = client("rds", moto, "us-west-2").describe_db_instances(DBInstanceIdentifier="py-dr")["DBInstances"][0]
    assert seen["ReadReplicaSourceDBInstanceIdentifier"] == arn

    # The same request again (a resumed run, same token) adopts the replica.
    token = west.create_read_replica(arn, "py-dr-2", token="run-42", timeout=30)
    assert west.create_read_replica(arn, "py-dr-2", token="run-42", timeout=30)["id"] == token["id"]
    with pytest.raises(drkit.AlreadyExistsError):
        west.create_read_replica(arn, "py-dr-2", timeout=30)

    promoted = west.promote("py-dr", timeout=30)
    assert promoted["status"] == "available" and promoted["replication_source"] is None
    seen = client("rds", moto, "us-west-2").describe_db_instances(DBInstanceIdentifier="py-dr")["DBInstances"][0]
    assert "ReadReplicaSourceDBInstanceIdentifier" not in seen, seen

    rds = drkit.Rds(region="us-east-1", endpoint=moto, **CREDS)
    assert rds.promote("py-primary", timeout=30)["status"] == "available"  # a primary: nothing to do
    restored = rds.restore_to_point_in_time("py-primary", "py-pitr", timeout=30)
    assert restored["id"] == "py-pitr"
    assert east.describe_db_instances(DBInstanceIdentifier="py-pitr")["DBInstances"][0]["DBInstanceStatus"] == "available"
    with pytest.raises(drkit.InvalidInputError):
        rds.restore_to_point_in_time("py-primary", "py-future", time="2999-01-01T00:00:00Z", timeout=30)
    with pytest.raises(drkit.NotFoundError):
        rds.describe("py-ghost")


def test_route53_failover_and_back(moto):
    r53c = client("route53", moto)
    zone = r53c.create_hosted_zone(Name="py.test", CallerReference="py")["HostedZone"]["Id"]

    def rec(set_id, role, value):
        return {
            "Action": "CREATE",
            "ResourceRecordSet": {
                "Name": "api.py.test.",
                "Type": "CNAME",
                "SetIdentifier": set_id,
                "Failover": role,
                "TTL": 30,
                "ResourceRecords": [{"Value": value}],
            },
        }

    r53c.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={"Changes": [rec("east", "PRIMARY", "api.east.py.test"), rec("west", "SECONDARY", "api.west.py.test")]},
    )
    r53 = drkit.Route53(endpoint=moto, **CREDS)
    switched = r53.failover("py.test", "api.py.test", "west", timeout=30)
    sets = r53c.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    roles = {r["SetIdentifier"]: r["Failover"] for r in sets if r["Name"] == "api.py.test."}
    assert roles == {"east": "SECONDARY", "west": "PRIMARY"}
    r53.restore("py.test", switched["before"], timeout=30)
    assert {r["set_id"]: r["failover"] for r in r53.route("py.test", "api.py.test")["records"]} == {
        "east": "PRIMARY",
        "west": "SECONDARY",
    }
    hc = r53.create_health_check(kind="HTTP", ip="127.0.0.1", port=8080, path="/ready")
    assert r53.health_check(hc)["spec"]["path"] == "/ready"


def test_repository_on_s3_and_copy(moto, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s3 = client("s3", moto)
    s3.create_bucket(Bucket="py-primary")
    s3.create_bucket(Bucket="py-replica")
    local = drkit.Repository.init(f"file://{tmp_path}/repo", password="pw")
    with drkit.TempCluster(password="py-aws-pw") as c:
        snap = local.backup(c.dsn("postgres"))
    report = local.copy_to(f"s3://py-replica/dr?endpoint={moto}&region=us-east-1", init=True)
    assert report["copied"] == [snap["id"]]
    assert report["chunks_uploaded"] > 0
    assert report["wal"] == {"files_copied": 0, "bytes_copied": 0, "files_present": 0}
    with pytest.raises(drkit.InvalidInputError, match="all, needed or none"):
        local.copy_to(f"s3://py-replica/dr?endpoint={moto}&region=us-east-1", wal="some")
    replica = drkit.Repository.open(f"s3://py-replica/dr?endpoint={moto}&region=us-east-1", password="pw")
    assert [s["id"] for s in replica.snapshots()] == [snap["id"]]
    assert replica.verify(snap["id"])["ok"] is True
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="py-replica")["Contents"]]
    assert any(k.startswith("dr/chunks/") for k in keys)


def test_s3_verify_replica(moto, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s3 = client("s3", moto)
    s3.create_bucket(Bucket="py-uploads")
    s3.create_bucket(Bucket="py-uploads-dr")
    for key in ["a", "b", "c"]:
        s3.put_object(Bucket="py-uploads", Key=f"u/{key}", Body=key.encode())
    for key in ["a", "c"]:
        s3.put_object(Bucket="py-uploads-dr", Key=f"u/{key}", Body=key.encode())
    src = f"s3://py-uploads/u?endpoint={moto}&region=us-east-1"
    dst = f"s3://py-uploads-dr/u?endpoint={moto}&region=us-east-1"
    report = drkit.s3_verify_replica(src, dst)
    assert report["in_sync"] is False
    assert [o["key"] for o in report["missing"]["first"]] == ["b"]
    s3.put_object(Bucket="py-uploads-dr", Key="u/b", Body=b"b")
    assert drkit.s3_verify_replica(src, dst)["in_sync"] is True


def test_s3_check_bucket(moto, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s3 = client("s3", moto)
    s3.create_bucket(Bucket="py-bare")
    report = drkit.s3_check_bucket(f"s3://py-bare?endpoint={moto}&region=us-east-1", lifecycle=True)
    assert report["ok"] is False
    assert any("versioning" in p for p in report["problems"])
    assert any("lifecycle" in p for p in report["problems"])


def test_s3_sync(moto, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s3 = client("s3", moto)
    s3.create_bucket(Bucket="py-static")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<h1>hi</h1>")
    dst = f"s3://py-static/site?endpoint={moto}&region=us-east-1"
    assert drkit.s3_sync(str(tmp_path / "site"), dst)["copied"]["count"] == 1
    assert drkit.s3_sync(str(tmp_path / "site"), dst)["unchanged"] == 1
    assert s3.get_object(Bucket="py-static", Key="site/index.html")["Body"].read() == b"<h1>hi</h1>"


def test_secretsmanager_get_reads_a_key_and_names_what_is_missing(moto):
    sm = client("secretsmanager", moto)
    sm.create_secret(Name="py/db", SecretString='{"username": "app", "password": "Py-Secret-Value-88"}')
    where = {"endpoint": moto, "region": "us-east-1", **CREDS}
    got = drkit.secretsmanager_get("py/db", key="password", **where)
    assert got["value"] == "Py-Secret-Value-88"
    assert got["name"] == "py/db"
    assert "AWSCURRENT" in got["stages"]
    whole = drkit.secretsmanager_get("py/db", **where)
    assert whole["value"] == '{"username": "app", "password": "Py-Secret-Value-88"}'
    with pytest.raises(drkit.NotFoundError) as e:
        drkit.secretsmanager_get("py/db", key="pasword", **where)
    assert 'no key "pasword"; its keys are password, username' in str(e.value)
    assert "Py-Secret-Value-88" not in str(e.value)
    with pytest.raises(drkit.NotFoundError) as e:
        drkit.secretsmanager_get("py/nope", **where)
    assert 'reading secret "py/nope"' in str(e.value)
