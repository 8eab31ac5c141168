//! `drkit s3 verify-replica` against two real S3 servers standing for two regions:
//! garage holds the source bucket, moto_server the replica; objects are written with
//! boto3. A replica with one object missing, one changed and one extra is reported
//! exactly (exit 3); once repaired it is in sync (exit 0).

use std::process::Command;

use dr_testkit::{stderr, venv, Drkit, Garage, Moto, GARAGE_KEY_ID, GARAGE_SECRET};

const BIN: &str = env!("CARGO_BIN_EXE_drkit");

/// Runs a boto3 script with `src` and `dst` clients for the two servers.
fn boto3(garage: &str, moto: &str, script: &str) {
    let prelude = format!(
        "import boto3\nfrom botocore.config import Config\n\
         kw = dict(aws_access_key_id='{GARAGE_KEY_ID}', aws_secret_access_key='{GARAGE_SECRET}', region_name='us-east-1', config=Config(s3={{'addressing_style': 'path'}}))\n\
         src = boto3.client('s3', endpoint_url='{garage}', **kw)\n\
         dst = boto3.client('s3', endpoint_url='{moto}', **kw)\n"
    );
    let out = Command::new(venv().join("bin/python"))
        .args(["-c", &format!("{prelude}{script}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "boto3: {}", stderr(&out));
}

#[test]
fn a_replica_that_is_behind_is_reported_exactly() {
    let (Some(garage), Some(moto)) = (Garage::start(), Moto::start()) else {
        return;
    };
    let (g, m) = (garage.endpoint(), moto.endpoint());
    boto3(
        &g,
        &m,
        "dst.create_bucket(Bucket='replica')\n\
         for key, body in [('a.txt', b'alpha'), ('b.txt', b'bravo'), ('c/d.txt', b'delta'), ('e.txt', b'echo' * 1000)]:\n\
         \x20   src.put_object(Bucket='drkit', Key='uploads/' + key, Body=body)\n\
         for key, body in [('a.txt', b'alpha'), ('c/d.txt', b'DELTA'), ('e.txt', b'echo' * 1000), ('extra.txt', b'x')]:\n\
         \x20   dst.put_object(Bucket='replica', Key='uploads/' + key, Body=body)\n\
         src.put_object(Bucket='drkit', Key='elsewhere/ignored', Body=b'outside the prefix')\n",
    );
    let mut d = Drkit::at(BIN, "memory://unused");
    d.env = garage
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let source = format!("s3://drkit/uploads?endpoint={g}&region=us-east-1");
    let replica = format!("s3://replica/uploads?endpoint={m}&region=us-east-1");
    let out = d.run(&["--json", "s3", "verify-replica", &source, &replica]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys = |what: &str| -> Vec<String> {
        r[what]["first"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["key"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(keys("missing"), ["b.txt"], "{r}");
    assert_eq!(keys("differing"), ["c/d.txt"], "{r}");
    assert_eq!(keys("extra"), ["extra.txt"], "{r}");
    assert_eq!(r["source_objects"], 4);
    assert_eq!(r["in_sync"], false);
    assert!(r["lag_seconds"].as_f64().is_some(), "{r}");
    let text = d.run(&["s3", "verify-replica", &source, &replica]);
    let shown = String::from_utf8_lossy(&text.stdout);
    assert!(shown.contains("missing: b.txt"), "{shown}");

    // Repaired: in sync, exit 0 (an extra object does not make it behind).
    boto3(
        &g,
        &m,
        "dst.put_object(Bucket='replica', Key='uploads/b.txt', Body=b'bravo')\n\
         dst.put_object(Bucket='replica', Key='uploads/c/d.txt', Body=b'delta')\n",
    );
    let r = d.json(&["s3", "verify-replica", &source, &replica]);
    assert_eq!(r["in_sync"], true, "{r}");
    assert_eq!(r["extra"]["count"], 1);

    // The same place twice is not a replica.
    let out = d.run(&["s3", "verify-replica", &source, &source]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("the same place"), "{}", stderr(&out));

    // A bucket that does not exist is named.
    let out = d.run(&[
        "s3",
        "verify-replica",
        &source,
        &format!("s3://no-such-bucket/x?endpoint={m}&region=us-east-1"),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no-such-bucket"), "{}", stderr(&out));
}

#[test]
fn a_buckets_protection_is_read_back() {
    let Some(moto) = Moto::start() else {
        return;
    };
    let m = moto.endpoint();
    // As seed 004 configures an upload bucket: versioned, replicated, with lifecycle rules.
    boto3(
        &m,
        &m,
        "for b in ['uploads', 'uploads-dr', 'bare']:\n\
         \x20   dst.create_bucket(Bucket=b)\n\
         for b in ['uploads', 'uploads-dr']:\n\
         \x20   dst.put_bucket_versioning(Bucket=b, VersioningConfiguration={'Status': 'Enabled'})\n\
         dst.put_bucket_replication(Bucket='uploads', ReplicationConfiguration={'Role': 'arn:aws:iam::123456789012:role/replication', 'Rules': [{'ID': 'to-dr', 'Status': 'Enabled', 'Priority': 1, 'Filter': {}, 'DeleteMarkerReplication': {'Status': 'Disabled'}, 'Destination': {'Bucket': 'arn:aws:s3:::uploads-dr'}}]})\n\
         dst.put_bucket_lifecycle_configuration(Bucket='uploads', LifecycleConfiguration={'Rules': [{'ID': 'old-versions', 'Status': 'Enabled', 'Filter': {}, 'NoncurrentVersionExpiration': {'NoncurrentDays': 30}}]})\n",
    );
    let mut d = Drkit::at(BIN, "memory://unused");
    d.env = vec![
        ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
    ];
    let url = |b: &str| format!("s3://{b}?endpoint={m}&region=us-east-1");
    let r = d.json(&[
        "s3",
        "check-bucket",
        &url("uploads"),
        "--replicates-to",
        "uploads-dr",
        "--lifecycle",
    ]);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["versioning"], "Enabled");
    assert_eq!(
        r["replication"][0]["destination"],
        "arn:aws:s3:::uploads-dr"
    );
    assert_eq!(r["lifecycle_rules"][0], "old-versions");

    let out = d.run(&[
        "--json",
        "s3",
        "check-bucket",
        &url("bare"),
        "--replicates-to",
        "uploads-dr",
        "--lifecycle",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = r["problems"].to_string();
    for want in [
        "versioning is Off",
        "no replication rule to arn:aws:s3:::uploads-dr",
        "no enabled lifecycle rule",
    ] {
        assert!(problems.contains(want), "{want}: {problems}");
    }
}

#[test]
fn a_folder_syncs_to_a_bucket_and_then_to_another_region() {
    let (Some(garage), Some(moto)) = (Garage::start(), Moto::start()) else {
        return;
    };
    let (g, m) = (garage.endpoint(), moto.endpoint());
    boto3(&g, &m, "dst.create_bucket(Bucket='static-dr')\n");
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("static");
    std::fs::create_dir_all(site.join("css")).unwrap();
    std::fs::write(site.join("index.html"), "<h1>shop</h1>").unwrap();
    std::fs::write(site.join("logo.png"), vec![7u8; 100_000]).unwrap();
    std::fs::write(site.join("css/site.css"), "body{}").unwrap();
    let mut d = Drkit::at(BIN, "memory://unused");
    d.env = garage
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let bucket = format!("s3://drkit/static?endpoint={g}&region=us-east-1");
    let site_arg = site.to_str().unwrap();

    let r = d.json(&["s3", "sync", site_arg, &bucket]);
    assert_eq!(r["copied"]["count"], 3, "{r}");
    let r = d.json(&["s3", "sync", site_arg, &bucket]);
    assert_eq!(
        (r["copied"]["count"].clone(), r["unchanged"].clone()),
        (0.into(), 3.into()),
        "only what changed moves: {r}"
    );

    // Same size, other bytes: the MD5 tells.
    std::fs::write(site.join("index.html"), "<h1>SHOP</h1>").unwrap();
    std::fs::remove_file(site.join("css/site.css")).unwrap();
    let plan = d.json(&["s3", "sync", site_arg, &bucket, "--delete", "--dry-run"]);
    assert_eq!(plan["copied"]["first"][0]["key"], "index.html", "{plan}");
    assert_eq!(plan["deleted"]["first"][0]["key"], "css/site.css", "{plan}");
    let r = d.json(&["s3", "sync", site_arg, &bucket, "--delete"]);
    assert_eq!(r["copied"]["count"], 1);
    assert_eq!(r["deleted"]["count"], 1);

    // Bucket to bucket, across servers: the replica is then in sync.
    let replica = format!("s3://static-dr/static?endpoint={m}&region=us-east-1");
    let r = d.json(&["s3", "sync", &bucket, &replica]);
    assert_eq!(r["copied"]["count"], 2, "{r}");
    let check = d.json(&["s3", "verify-replica", &bucket, &replica]);
    assert_eq!(check["in_sync"], true, "{check}");
    boto3(
        &g,
        &m,
        "assert dst.get_object(Bucket='static-dr', Key='static/index.html')['Body'].read() == b'<h1>SHOP</h1>'\n",
    );
}
