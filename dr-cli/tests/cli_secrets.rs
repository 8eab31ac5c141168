//! Secrets from AWS Secrets Manager (moto, written with boto3) into a Kubernetes Secret
//! (the test API) and a program's environment, as seed 003 moves its database password:
//! the value arrives where it is used, and appears nowhere else — not in the repository,
//! the output, the plan, `runs show` or a notification — even across a resume, which
//! reads it again.

use std::process::Command;

use base64::Engine as _;
use dr_testkit::k8s::K8sTestApi;
use dr_testkit::{stderr, venv, Drkit, Moto, Receiver};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_drkit");
const PASSWORD: &str = "Rotated-Db-Pass-7261";

/// Runs boto3's Secrets Manager client against moto.
fn boto3(moto: &str, script: &str) {
    let prelude = format!(
        "import boto3, json\n\
         sm = boto3.client('secretsmanager', endpoint_url='{moto}', aws_access_key_id='testing', aws_secret_access_key='testing', region_name='us-east-1')\n"
    );
    let out = Command::new(venv().join("bin/python"))
        .args(["-c", &format!("{prelude}{script}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "boto3: {}", stderr(&out));
}

#[test]
#[allow(clippy::too_many_lines)] // one runbook, run, stopped, resumed; each place searched
fn a_secret_goes_from_secrets_manager_into_kubernetes_and_nowhere_else() {
    let Some(moto) = Moto::start() else {
        return;
    };
    let m = moto.endpoint();
    boto3(
        &m,
        &format!(
            "sm.create_secret(Name='prod/db', SecretString=json.dumps({{'username': 'app', 'password': '{PASSWORD}'}}))\n"
        ),
    );
    let api = K8sTestApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "dr");
    api.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hook = rt.block_on(Receiver::start());
    let repo = dir.path().join("repo");
    let mut d = Drkit::local(BIN, &repo);
    d.env.extend([
        ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
    ]);
    // Plain, so that a search of its files means something.
    d.json(&["repo", "init", "--no-encryption"]);
    let book = dir.path().join("secrets.yaml");
    let hook_url = format!("{}/hook", hook.url());
    std::fs::write(
        &book,
        format!(
            r#"version: 1
name: db-password-into-dr
notify:
  - {{ name: ops, kind: webhook, url: "{hook}", on: [start, step, approval, end] }}
targets:
  dr: {{ kind: kubernetes, context: dr, kubeconfig: "{kc}", namespace: shop }}
steps:
  - id: db
    action: secretsmanager.get
    with: {{ secret: prod/db, key: password, endpoint: "{m}" }}
  - id: whole
    action: secretsmanager.get
    with: {{ secret: prod/db, endpoint: "{m}" }}
  - id: use
    action: exec
    needs: [db]
    with:
      argv: [sh, -c, 'echo "the program saw $DB_PASSWORD"; printf %s "$DB_PASSWORD" | base64; printf %s "$DB_PASSWORD" | sha256sum']
      env: {{ DB_PASSWORD: "${{steps.db.outputs.value}}" }}
  - id: gate
    action: approve
    needs: [use, whole]
    with: {{ message: "put the password into the DR cluster" }}
  - id: put
    action: k8s.secret_set
    needs: [gate]
    with:
      target: dr
      name: db
      set: {{ password: "${{steps.db.outputs.value}}", whole: "${{steps.whole.outputs.value}}" }}
      create: true
      restart: false
"#,
            hook = hook_url,
            kc = kubeconfig.display(),
        ),
    )
    .unwrap();
    let book = book.to_str().unwrap();
    let mut printed = String::new();

    // The plan reads the secret (it exists, the key is there) and says only its length.
    let plan = d.run(&["plan", book]);
    printed.push_str(&String::from_utf8_lossy(&plan.stdout));
    printed.push_str(&stderr(&plan));
    assert!(plan.status.success(), "{printed}");
    assert!(
        printed.contains(&format!(
            "key password: {} characters, kept in memory only",
            PASSWORD.len()
        )),
        "{printed}"
    );

    assert!(
        printed.contains("set from what an earlier step gives at run time: password, whole"),
        "{printed}"
    );

    // The run reads it, hands it to the program, and stops at the approval.
    let out = d.run(&["--json", "run", book]);
    printed.push_str(&String::from_utf8_lossy(&out.stdout));
    printed.push_str(&stderr(&out));
    let run: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(run["outcome"], "waiting", "{printed}");
    let id = run["id"].as_str().unwrap().to_owned();
    let used = dr_testkit::step(&run, "use")["outputs"]["stdout"]
        .as_str()
        .unwrap()
        .to_owned();
    let digest = sha256(PASSWORD);
    assert!(
        used.contains(&digest),
        "the program had the password in its environment: {used}"
    );
    assert!(
        used.contains("the program saw ***"),
        "what it printed of it is masked: {used}"
    );
    assert_eq!(
        dr_testkit::step(&run, "db")["outputs"]["value"],
        "<secret>",
        "{run}"
    );
    assert_eq!(dr_testkit::step(&run, "db")["outputs"]["name"], "prod/db");

    // Another process resumes it: the value was never journaled, so it is read again.
    let out = d.run(&["--json", "run", "--resume", &id, "--approve", "gate"]);
    printed.push_str(&String::from_utf8_lossy(&out.stdout));
    printed.push_str(&stderr(&out));
    let resumed: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(resumed["outcome"], "succeeded", "{printed}");
    let secret = api.object("v1", "secrets", "shop", "db").unwrap();
    let data = |k: &str| {
        let b64 = secret["data"][k].as_str().unwrap();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(data("password"), PASSWORD, "the Secret holds the value");
    let whole: Value = serde_json::from_str(&data("whole")).unwrap();
    assert_eq!(whole, json!({"username": "app", "password": PASSWORD}));

    // Nowhere else: output, plan, runs show, notifications, the repository's files.
    let shown = d.run(&["--json", "runs", "show", &id]);
    printed.push_str(&String::from_utf8_lossy(&shown.stdout));
    assert!(
        printed.contains("read again for the steps still to run"),
        "the resume says it read the secret again: {printed}"
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(PASSWORD);
    for needle in [PASSWORD, b64.as_str()] {
        assert!(!printed.contains(needle), "printed: {printed}");
        for r in hook.received() {
            assert!(!r.body.to_string().contains(needle), "notified: {}", r.body);
        }
        for (path, bytes) in dr_testkit::files_under(&repo) {
            assert!(
                !dr_testkit::holds(&bytes, needle),
                "{} holds the secret",
                path.display()
            );
        }
    }
    let told = hook.received();
    assert!(
        told.iter()
            .any(|r| r.body.to_string().contains("\"use\"") || r.body.to_string().contains("use")),
        "the notifier was told of every step: {:?}",
        told.iter().map(|r| r.body.to_string()).collect::<Vec<_>>()
    );
}

#[test]
fn a_secret_that_is_not_there_is_named_and_its_keys_listed_never_its_value() {
    let Some(moto) = Moto::start() else {
        return;
    };
    let m = moto.endpoint();
    boto3(
        &m,
        &format!("sm.create_secret(Name='prod/db', SecretString=json.dumps({{'username': 'app', 'password': '{PASSWORD}'}}))\n"),
    );
    let dir = tempfile::tempdir().unwrap();
    let d = Drkit::local(BIN, &dir.path().join("repo")).with_env([
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
    ]);
    let info = d.json(&[
        "secrets",
        "--endpoint",
        &m,
        "get",
        "prod/db",
        "--key",
        "password",
    ]);
    assert_eq!(info["format"], "json");
    assert_eq!(info["keys"], json!(["password", "username"]));
    assert_eq!(info["length"], PASSWORD.len());
    assert!(!info.to_string().contains(PASSWORD));
    let text = d.run(&["secrets", "--endpoint", &m, "get", "prod/db"]);
    assert!(text.status.success(), "{}", stderr(&text));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("(not shown)") && !text.contains(PASSWORD),
        "{text}"
    );

    let typo = d.run(&[
        "secrets",
        "--endpoint",
        &m,
        "get",
        "prod/db",
        "--key",
        "pasword",
    ]);
    assert_ne!(typo.status.code(), Some(0));
    assert!(
        stderr(&typo).contains("has no key \"pasword\"; its keys are password, username"),
        "{}",
        stderr(&typo)
    );
    assert!(!stderr(&typo).contains(PASSWORD));
    let missing = d.run(&["secrets", "--endpoint", &m, "get", "prod/dbb"]);
    assert_ne!(missing.status.code(), Some(0));
    assert!(
        stderr(&missing).contains("reading secret \"prod/dbb\" from Secrets Manager in us-east-1"),
        "{}",
        stderr(&missing)
    );
}

fn sha256(s: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", "printf %s \"$0\" | sha256sum", s])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}
