//! Route 53 zones as data, on moto_server read back with boto3: a zone with simple,
//! weighted, failover (with a health check), latency and alias records is exported into
//! the repository; after the zone is damaged, an import shows each change, restores it,
//! and boto3 reads the same record sets as before; an import into another zone moves the
//! names to it.

use std::process::Command;

use dr_testkit::{stderr, venv, Drkit, Moto};

const BIN: &str = env!("CARGO_BIN_EXE_drkit");

/// Runs boto3 against moto; prints what the script prints.
fn boto3(moto: &str, script: &str) -> String {
    let prelude = format!(
        "import boto3, json\n\
         r53 = boto3.client('route53', endpoint_url='{moto}', aws_access_key_id='testing', aws_secret_access_key='testing', region_name='us-east-1')\n\
         def zone(name):\n\
         \x20   return [z['Id'] for z in r53.list_hosted_zones()['HostedZones'] if z['Name'] == name][0]\n\
         def records(name):\n\
         \x20   rs = r53.list_resource_record_sets(HostedZoneId=zone(name))['ResourceRecordSets']\n\
         \x20   return sorted(json.dumps(r, sort_keys=True) for r in rs if r['Type'] not in ('SOA', 'NS'))\n\
         def change(name, changes):\n\
         \x20   r53.change_resource_record_sets(HostedZoneId=zone(name), ChangeBatch={{'Changes': changes}})\n"
    );
    let out = Command::new(venv().join("bin/python"))
        .args(["-c", &format!("{prelude}{script}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "boto3: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_zone_comes_back_as_boto3_reads_it() {
    let Some(moto) = Moto::start() else {
        return;
    };
    let m = moto.endpoint();
    boto3(
        &m,
        "for z in ['example.com.', 'example.org.']:\n\
         \x20   r53.create_hosted_zone(Name=z, CallerReference=z)\n\
         hc = r53.create_health_check(CallerReference='hc', HealthCheckConfig={'Type': 'HTTPS', 'FullyQualifiedDomainName': 'app.example.com', 'Port': 443, 'ResourcePath': '/health'})['HealthCheck']['Id']\n\
         up = lambda r: {'Action': 'UPSERT', 'ResourceRecordSet': r}\n\
         change('example.com.', [\n\
         \x20   up({'Name': 'www.example.com.', 'Type': 'A', 'TTL': 60, 'ResourceRecords': [{'Value': '192.0.2.10'}, {'Value': '192.0.2.11'}]}),\n\
         \x20   up({'Name': 'docs.example.com.', 'Type': 'CNAME', 'TTL': 300, 'ResourceRecords': [{'Value': 'www.example.com'}]}),\n\
         \x20   up({'Name': 'api.example.com.', 'Type': 'CNAME', 'TTL': 60, 'SetIdentifier': 'use1', 'Weight': 100, 'ResourceRecords': [{'Value': 'api-use1.example.com'}]}),\n\
         \x20   up({'Name': 'api.example.com.', 'Type': 'CNAME', 'TTL': 60, 'SetIdentifier': 'usw2', 'Weight': 0, 'ResourceRecords': [{'Value': 'api-usw2.example.com'}]}),\n\
         \x20   up({'Name': 'app.example.com.', 'Type': 'A', 'TTL': 30, 'SetIdentifier': 'primary', 'Failover': 'PRIMARY', 'HealthCheckId': hc, 'ResourceRecords': [{'Value': '192.0.2.20'}]}),\n\
         \x20   up({'Name': 'app.example.com.', 'Type': 'A', 'TTL': 30, 'SetIdentifier': 'secondary', 'Failover': 'SECONDARY', 'ResourceRecords': [{'Value': '198.51.100.20'}]}),\n\
         \x20   up({'Name': 'near.example.com.', 'Type': 'A', 'TTL': 60, 'SetIdentifier': 'eu', 'Region': 'eu-west-1', 'ResourceRecords': [{'Value': '203.0.113.5'}]}),\n\
         \x20   up({'Name': 'shop.example.com.', 'Type': 'A', 'AliasTarget': {'HostedZoneId': zone('example.com.').split('/')[-1], 'DNSName': 'www.example.com.', 'EvaluateTargetHealth': False}}),\n\
         ])\n",
    );
    let before = boto3(&m, "print('\\n'.join(records('example.com.')))");
    assert_eq!(before.lines().count(), 8, "{before}");

    let dir = tempfile::tempdir().unwrap();
    let mut d = Drkit::local(BIN, &dir.path().join("repo"));
    d.env = vec![
        ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        ("DRKIT_PASSWORD".into(), "zone-test".into()),
    ];
    d.json(&["repo", "init"]);
    let snap = d.json(&["dns", "--endpoint", &m, "export", "--zone", "example.com"]);
    assert_eq!(snap["kind"], "dns");
    assert_eq!(
        snap["metadata"]["records"], 10,
        "8 record sets, SOA and NS: {snap}"
    );

    // The night it is needed: records deleted, one changed, one added by hand.
    boto3(
        &m,
        "rs = {(r['Name'], r.get('SetIdentifier')): r for r in r53.list_resource_record_sets(HostedZoneId=zone('example.com.'))['ResourceRecordSets']}\n\
         change('example.com.', [{'Action': 'DELETE', 'ResourceRecordSet': rs[('www.example.com.', None)]}, {'Action': 'DELETE', 'ResourceRecordSet': rs[('api.example.com.', 'usw2')]}])\n\
         change('example.com.', [{'Action': 'UPSERT', 'ResourceRecordSet': {'Name': 'docs.example.com.', 'Type': 'CNAME', 'TTL': 300, 'ResourceRecords': [{'Value': 'wrong.example.net'}]}}, {'Action': 'UPSERT', 'ResourceRecordSet': {'Name': 'stray.example.com.', 'Type': 'TXT', 'TTL': 60, 'ResourceRecords': [{'Value': '\"added by hand\"'}]}}])\n",
    );
    let plan = d.json(&["dns", "--endpoint", &m, "import", "latest", "--dry-run"]);
    assert_eq!(plan["applied"], false);
    assert_eq!(plan["create"].as_array().unwrap().len(), 2, "{plan}");
    assert_eq!(plan["change"][0], "docs.example.com. CNAME", "{plan}");
    assert_eq!(plan["kept"][0], "stray.example.com. TXT", "{plan}");
    let done = d.json(&["dns", "--endpoint", &m, "import", "latest", "--delete"]);
    assert_eq!(done["applied"], true, "{done}");
    assert_eq!(done["delete"][0], "stray.example.com. TXT", "{done}");
    let after = boto3(&m, "print('\\n'.join(records('example.com.')))");
    assert_eq!(after, before, "the zone as boto3 reads it");

    // Into another zone: the names move to it.
    let moved = d.json(&[
        "dns",
        "--endpoint",
        &m,
        "import",
        "latest",
        "--zone",
        "example.org",
    ]);
    assert_eq!(moved["create"].as_array().unwrap().len(), 8, "{moved}");
    let org = boto3(&m, "print('\\n'.join(records('example.org.')))");
    assert!(org.contains("\"www.example.org.\""), "{org}");
    assert!(!org.contains("www.example.com.\", \"Type\""), "{org}");
}
