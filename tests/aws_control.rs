//! RDS and Route 53 actions against moto_server, read back with separate SDK clients.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet,
    ResourceRecordSetFailover, RrType,
};
use dr_aws::{
    HealthCheckSpec, PitrRequest, Rds, RdsTarget, ReplicaRequest, Route53, Route53Router,
};
use dr_core::target::{DatabaseTarget, Lsn, PointInTime, Role};
use dr_core::traffic::{Destination, TrafficRouter};
use dr_core::wait::Wait;
use dr_core::ErrorKind;
use dr_testkit::Moto;

fn wait() -> Wait {
    Wait::new(Duration::from_secs(30)).poll(Duration::from_millis(100))
}

async fn rds_client(moto: &Moto, region: &str) -> aws_sdk_rds::Client {
    aws_sdk_rds::Client::new(&moto.aws(region).load().await.unwrap())
}

async fn create_primary(moto: &Moto, id: &str) -> String {
    let c = rds_client(moto, "us-east-1").await;
    let out = c
        .create_db_instance()
        .db_instance_identifier(id)
        .engine("postgres")
        .db_instance_class("db.t3.micro")
        .allocated_storage(20)
        .master_username("app")
        .master_user_password("secret-pw-123")
        .backup_retention_period(7)
        .send()
        .await
        .unwrap();
    out.db_instance()
        .unwrap()
        .db_instance_arn()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn rds_cross_region_replica_and_promotion() {
    let Some(moto) = Moto::start() else { return };
    let arn = create_primary(&moto, "shop-primary").await;
    let east = Rds::connect(&moto.aws("us-east-1")).await.unwrap();
    let west = Rds::connect(&moto.aws("us-west-2")).await.unwrap();

    // A cross-region replica, read back by a separate client in its region.
    let request = ReplicaRequest {
        source: arn.clone(),
        id: "shop-dr".into(),
        instance_class: None,
        token: Some("run-1".into()),
    };
    let replica = west.create_read_replica(&request, &wait()).await.unwrap();
    assert!(replica.is_available());
    let other = rds_client(&moto, "us-west-2").await;
    let seen = other
        .describe_db_instances()
        .db_instance_identifier("shop-dr")
        .send()
        .await
        .unwrap();
    let seen = &seen.db_instances()[0];
    assert_eq!(
        seen.read_replica_source_db_instance_identifier(),
        Some(arn.as_str())
    );
    assert!(
        replica.endpoint.as_deref().is_some_and(|e| e.contains(':')),
        "{replica:?}"
    );

    // Called again with the same token, the create adopts the replica; without it, or
    // with another, the existing name is refused.
    let again = west.start_read_replica(&request).await.unwrap();
    assert!(again.adopted, "{again:?}");
    let stranger = ReplicaRequest {
        token: Some("run-2".into()),
        ..request.clone()
    };
    let e = west.start_read_replica(&stranger).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");

    // Promotion through the DatabaseTarget trait: afterwards RDS itself, asked by a
    // separate client, says the instance has no source any more.
    let target: Arc<dyn DatabaseTarget> = Arc::new(RdsTarget::new(west.clone(), "shop-dr"));
    assert_eq!(target.health().await.unwrap().role, Role::Replica);
    let promoted = target.promote(&wait()).await.unwrap();
    assert!(promoted.available);
    assert_eq!((promoted.role, promoted.writable), (Role::Primary, true));
    let seen = other
        .describe_db_instances()
        .db_instance_identifier("shop-dr")
        .send()
        .await
        .unwrap();
    assert_eq!(
        seen.db_instances()[0].read_replica_source_db_instance_identifier(),
        None,
        "the promoted replica is standalone"
    );
    // Promoting a primary is success without a call.
    let primary = RdsTarget::new(east.clone(), "shop-primary");
    assert_eq!(primary.promote(&wait()).await.unwrap().role, Role::Primary);

    // The conformance check of targets, on a second, fresh replica.
    let second = ReplicaRequest {
        source: arn.clone(),
        id: "shop-dr-2".into(),
        instance_class: None,
        token: None,
    };
    west.create_read_replica(&second, &wait()).await.unwrap();
    dr_core::testing::check_database_target(&RdsTarget::new(west.clone(), "shop-dr-2"), &wait())
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rds_point_in_time_restore() {
    let Some(moto) = Moto::start() else { return };
    create_primary(&moto, "shop-primary").await;
    let east = Rds::connect(&moto.aws("us-east-1")).await.unwrap();
    let primary = RdsTarget::new(east.clone(), "shop-primary");

    // Point in time: latest and a past time; the new instances exist for a separate client.
    let latest_request = PitrRequest {
        source: "shop-primary".into(),
        new_id: "shop-pitr-latest".into(),
        target: PointInTime::Latest,
        token: Some("run-7".into()),
    };
    let latest = east
        .restore_to_point_in_time(&latest_request, &wait())
        .await
        .unwrap();
    assert_eq!(latest.id, "shop-pitr-latest");
    // The same request again (a resumed run) adopts what the first created.
    let again = east
        .start_point_in_time_restore(&latest_request)
        .await
        .unwrap();
    assert!(again.adopted);
    assert_eq!(again.resource.id, "shop-pitr-latest");
    // RDS restores to times only: an LSN is refused naming what it takes.
    let e = primary
        .restore_to_point_in_time(&PointInTime::Lsn(Lsn(0x300_0028)), "shop-lsn", &wait())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("time"), "{e}");
    let past = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1);
    primary
        .restore_to_point_in_time(&PointInTime::Time(past), "shop-pitr-time", &wait())
        .await
        .unwrap();
    let east_client = rds_client(&moto, "us-east-1").await;
    for id in ["shop-pitr-latest", "shop-pitr-time"] {
        let out = east_client
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
            .unwrap();
        assert_eq!(
            out.db_instances()[0].db_instance_status(),
            Some("available"),
            "{id}"
        );
    }
    let future = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    let e = east
        .restore_to_point_in_time(
            &PitrRequest {
                source: "shop-primary".into(),
                new_id: "shop-future".into(),
                target: PointInTime::Time(future),
                token: None,
            },
            &wait(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = east
        .restore_to_point_in_time(
            &PitrRequest {
                token: None,
                ..latest_request.clone()
            },
            &wait(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::AlreadyExists,
        "an existing target is never adopted without its request's token: {e}"
    );

    let e = east.describe("no-such-db").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("no-such-db"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rds_snapshots_copy_and_restore() {
    let Some(moto) = Moto::start() else { return };
    create_primary(&moto, "shop-primary").await;
    let east = Rds::connect(&moto.aws("us-east-1")).await.unwrap();
    let west = Rds::connect(&moto.aws("us-west-2")).await.unwrap();
    let other = rds_client(&moto, "us-west-2").await;
    // Snapshots: create, list, copy to another region, restore.
    let snap = east
        .create_snapshot("shop-primary", "shop-snap-1", &wait())
        .await
        .unwrap();
    assert_eq!(snap.status, "available");
    let listed = east.snapshots(Some("shop-primary")).await.unwrap();
    assert!(listed.iter().any(|s| s.id == "shop-snap-1"), "{listed:?}");
    let copied = west
        .copy_snapshot(snap.arn.as_deref().unwrap(), "shop-snap-west", &wait())
        .await
        .unwrap();
    assert_eq!(copied.id, "shop-snap-west");
    let restored = west
        .restore_snapshot("shop-snap-west", "shop-from-snap", &wait())
        .await
        .unwrap();
    assert!(restored.is_available());
    let out = other
        .describe_db_instances()
        .db_instance_identifier("shop-from-snap")
        .send()
        .await
        .unwrap();
    assert_eq!(out.db_instances().len(), 1);
}

async fn r53_client(moto: &Moto) -> aws_sdk_route53::Client {
    aws_sdk_route53::Client::new(&moto.aws("us-east-1").load().await.unwrap())
}

fn record(
    name: &str,
    set: &str,
    value: &str,
    failover: Option<&str>,
    weight: Option<i64>,
    hc: Option<&str>,
) -> Change {
    let mut b = ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::Cname)
        .set_identifier(set)
        .ttl(60)
        .resource_records(ResourceRecord::builder().value(value).build().unwrap())
        .set_weight(weight)
        .set_health_check_id(hc.map(str::to_owned));
    if let Some(f) = failover {
        b = b.failover(ResourceRecordSetFailover::from(f));
    }
    Change::builder()
        .action(ChangeAction::Create)
        .resource_record_set(b.build().unwrap())
        .build()
        .unwrap()
}

/// (set id, failover role, weight, value) per record, as a separate client reads them.
async fn read_back(
    c: &aws_sdk_route53::Client,
    zone: &str,
    name: &str,
) -> Vec<(String, Option<String>, Option<i64>, String)> {
    let out = c
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .unwrap();
    let mut v: Vec<_> = out
        .resource_record_sets()
        .iter()
        .filter(|r| r.name() == name && r.r#type() == &RrType::Cname)
        .map(|r| {
            (
                r.set_identifier().unwrap_or_default().to_owned(),
                r.failover().map(|f| f.as_str().to_owned()),
                r.weight(),
                r.resource_records()
                    .first()
                    .map(|x| x.value().to_owned())
                    .unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Zone example.com with a failover pair (app, use1 PRIMARY with a health check) and a
/// weighted pair (api), made with a separate client.
async fn seeded_zone(moto: &Moto) -> (aws_sdk_route53::Client, String, Route53, String) {
    let c = r53_client(moto).await;
    let zone = c
        .create_hosted_zone()
        .name("example.com")
        .caller_reference("t1")
        .send()
        .await
        .unwrap();
    let zone_id = zone
        .hosted_zone()
        .unwrap()
        .id()
        .trim_start_matches("/hostedzone/")
        .to_owned();
    let r53 = Route53::connect(&moto.aws("us-east-1")).await.unwrap();

    let hc = r53
        .create_health_check(&HealthCheckSpec {
            kind: "HTTPS".into(),
            fqdn: Some("db.use1.example.com".into()),
            ip: None,
            port: 443,
            path: Some("/healthz".into()),
            interval: 10,
            failure_threshold: 3,
        })
        .await
        .unwrap();
    let read = r53.health_check(&hc).await.unwrap();
    assert_eq!(read.spec.path.as_deref(), Some("/healthz"));
    assert_eq!(read.spec.port, 443);

    c.change_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .change_batch(
            ChangeBatch::builder()
                .changes(record(
                    "app.example.com.",
                    "use1",
                    "lb.use1.example.com",
                    Some("PRIMARY"),
                    None,
                    Some(&hc),
                ))
                .changes(record(
                    "app.example.com.",
                    "usw2",
                    "lb.usw2.example.com",
                    Some("SECONDARY"),
                    None,
                    None,
                ))
                .changes(record(
                    "api.example.com.",
                    "use1",
                    "api.use1.example.com",
                    None,
                    Some(100),
                    None,
                ))
                .changes(record(
                    "api.example.com.",
                    "usw2",
                    "api.usw2.example.com",
                    None,
                    Some(0),
                    None,
                ))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    (c, zone_id, r53, hc)
}

#[tokio::test(flavor = "multi_thread")]
async fn route53_failover_and_back_with_health_checks() {
    let Some(moto) = Moto::start() else { return };
    let (c, zone_id, r53, hc) = seeded_zone(&moto).await;
    // Failover: the DR region becomes PRIMARY, as a separate client reads it; then back.
    let router: Arc<dyn TrafficRouter> = Arc::new(
        Route53Router::new(r53.clone(), "example.com", "app.example.com", "CNAME")
            .await
            .unwrap(),
    );
    let switched = router
        .switch(&Destination::Set("usw2".into()), &wait())
        .await
        .unwrap();
    assert_eq!(
        read_back(&c, &zone_id, "app.example.com.").await,
        vec![
            (
                "use1".into(),
                Some("SECONDARY".into()),
                None,
                "lb.use1.example.com".into()
            ),
            (
                "usw2".into(),
                Some("PRIMARY".into()),
                None,
                "lb.usw2.example.com".into()
            ),
        ]
    );
    assert_eq!(
        switched
            .after
            .record("use1")
            .unwrap()
            .health_check
            .as_deref(),
        Some(hc.as_str()),
        "the health check stays on its record"
    );
    // Switching again to where traffic already goes changes nothing.
    let again = router
        .switch(&Destination::Set("usw2".into()), &wait())
        .await
        .unwrap();
    assert_eq!(again.before, again.after);
    router.restore(&switched.before, &wait()).await.unwrap();
    assert_eq!(
        read_back(&c, &zone_id, "app.example.com.").await[0]
            .1
            .as_deref(),
        Some("PRIMARY")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn route53_weights_simple_records_and_mistakes() {
    let Some(moto) = Moto::start() else { return };
    let (c, zone_id, r53, _) = seeded_zone(&moto).await;
    let router = Route53Router::new(r53.clone(), "example.com", "app.example.com", "CNAME")
        .await
        .unwrap();
    // Weighted: all traffic to usw2, then explicit weights.
    let api = Route53Router::new(r53.clone(), &zone_id, "api.example.com", "CNAME")
        .await
        .unwrap();
    api.switch(&Destination::Set("usw2".into()), &wait())
        .await
        .unwrap();
    let w = read_back(&c, &zone_id, "api.example.com.").await;
    assert_eq!((w[0].2, w[1].2), (Some(0), Some(100)));
    api.switch(
        &Destination::Weights(dr_aws::route53::parse_weights("use1=30,usw2=70").unwrap()),
        &wait(),
    )
    .await
    .unwrap();
    let w = read_back(&c, &zone_id, "api.example.com.").await;
    assert_eq!((w[0].2, w[1].2), (Some(30), Some(70)));

    // A simple record where none existed, removed again on restore.
    let simple = Route53Router::new(r53.clone(), "example.com", "db.example.com", "CNAME")
        .await
        .unwrap();
    let set = simple
        .switch(
            &Destination::Values(vec!["db.usw2.example.com".into()]),
            &wait(),
        )
        .await
        .unwrap();
    assert!(set.before.records.is_empty());
    assert_eq!(
        read_back(&c, &zone_id, "db.example.com.").await,
        vec![(String::new(), None, None, "db.usw2.example.com".into())]
    );
    simple.restore(&set.before, &wait()).await.unwrap();
    assert!(read_back(&c, &zone_id, "db.example.com.").await.is_empty());

    let e = router
        .switch(&Destination::Set("euw1".into()), &wait())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        e.to_string().contains("use1, usw2"),
        "names the sets there are: {e}"
    );
    let e = Route53Router::new(r53, "nope.org", "a.nope.org", "A")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}
