//! The test app finds its database as each seed's app does, again on every request: a
//! repointing that is right makes `/health` answer from the new database, one that is
//! wrong (or missing) makes it fail, and a Deployment scaled to zero takes it away.

use dr_testkit::app::{request, AppOptions, Source, TestApp};
use dr_testkit::k8s::{deployment, K8sTestApi};
use dr_testkit::PgCluster;
use serde_json::json;

fn health(app: &TestApp) -> (u16, serde_json::Value) {
    request("GET", &format!("{}/health", app.url()), None)
}

#[test]
#[allow(clippy::too_many_lines)] // one app, each way it finds its database
fn the_app_follows_its_configuration_and_its_deployment() {
    let Some(primary) = PgCluster::start() else {
        return;
    };
    let Some(dr) = PgCluster::start() else {
        return;
    };
    primary.fill_items("shop", 30);
    dr.fill_items("shop", 20);
    primary.psql("shop", "CREATE TABLE users (name text, password text); INSERT INTO users VALUES ('ada', 'lovelace')");
    let api = K8sTestApi::start();
    api.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    api.create(deployment("shop", "api", 2, "shop/api:1"));
    let at = |pg: &PgCluster| format!("127.0.0.1:{}", pg.port());
    api.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config", "namespace": "shop"}, "data": {"DB_HOST": at(&primary)}}));
    let dsn = format!("postgres://postgres:{}@{{}}/shop", dr_testkit::PASSWORD);
    let app = TestApp::start(AppOptions {
        objects: Some(api.objects_handle()),
        namespace: "shop".into(),
        source: Source::ConfigMap {
            name: "app-config".into(),
            key: "DB_HOST".into(),
        },
        dsn: dsn.clone(),
        deployment: Some("api".into()),
        table: "items".into(),
        stopped_when: None,
    });
    let (status, doc) = health(&app);
    assert_eq!((status, doc["rows"].clone()), (200, json!(30)), "{doc}");
    let (status, doc) = request(
        "POST",
        &format!("{}/login", app.url()),
        Some(&json!({"user": "ada", "password": "lovelace"})),
    );
    assert_eq!(status, 200, "{doc}");
    let (status, _) = request(
        "POST",
        &format!("{}/login", app.url()),
        Some(&json!({"user": "ada", "password": "x"})),
    );
    assert_eq!(status, 401);
    let (status, doc) = request(
        "POST",
        &format!("{}/items", app.url()),
        Some(&json!({"sku": "new"})),
    );
    assert_eq!((status, doc["id"].clone()), (201, json!(31)), "{doc}");

    // Repointed right: the next request reads the DR database.
    let mut cm = api
        .object("v1", "configmaps", "shop", "app-config")
        .unwrap();
    cm["data"]["DB_HOST"] = json!(at(&dr));
    api.replace(cm.clone());
    let (status, doc) = health(&app);
    assert_eq!((status, doc["rows"].clone()), (200, json!(20)), "{doc}");
    // Repointed wrong: down, and saying why.
    cm["data"]["DB_HOST"] = json!("127.0.0.1:1");
    api.replace(cm);
    let (status, doc) = health(&app);
    assert_eq!(status, 503, "{doc}");
    assert!(
        doc["why"].as_str().unwrap().contains("127.0.0.1:1"),
        "{doc}"
    );

    // Scaled to zero: gone.
    let mut d = api.object("apps/v1", "deployments", "shop", "api").unwrap();
    d["spec"]["replicas"] = json!(0);
    api.replace(d);
    let (status, doc) = health(&app);
    assert_eq!(
        (status, doc["why"].clone()),
        (503, json!("deployment api is scaled to zero"))
    );

    // The other ways the seeds' apps find their database.
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join(".env");
    std::fs::write(
        &env,
        format!(
            "DEBUG=0\nDATABASE_URL=\"postgres://postgres:{}@{}/shop\"\n",
            dr_testkit::PASSWORD,
            at(&dr)
        ),
    )
    .unwrap();
    api.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
        "stringData": {"DATABASE_URL": format!("postgres://postgres:{}@{}/shop", dr_testkit::PASSWORD, at(&primary))}}));
    let mut web = deployment("shop", "web", 1, "shop/web:1");
    web["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "DATABASE_HOST", "value": at(&dr)}]);
    api.create(web);
    for (source, dsn, rows) in [
        (
            Source::Secret {
                name: "db".into(),
                key: "DATABASE_URL".into(),
            },
            "{}".to_owned(),
            31,
        ),
        (
            Source::DeploymentEnv {
                name: "web".into(),
                var: "DATABASE_HOST".into(),
            },
            dsn.clone(),
            20,
        ),
        (
            Source::EnvFile {
                path: env.clone(),
                var: "DATABASE_URL".into(),
            },
            "{}".to_owned(),
            20,
        ),
    ] {
        let app = TestApp::start(AppOptions {
            objects: Some(api.objects_handle()),
            namespace: "shop".into(),
            source: source.clone(),
            dsn,
            deployment: None,
            table: "items".into(),
            stopped_when: None,
        });
        let (status, doc) = health(&app);
        assert_eq!(
            (status, doc["rows"].clone()),
            (200, json!(rows)),
            "{source:?}: {doc}"
        );
    }
}
