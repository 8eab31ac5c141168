//! The runbook registry of this build: the core actions, the Postgres and AWS actions,
//! and the target kinds `postgres`, `rds` and `route53`.

use std::sync::Arc;

use async_trait::async_trait;
use dr_core::runbook::{
    actions, params, Action, ActionSpec, Field, Outcome, Registry, StepContext, Target, TargetKind,
};
use dr_core::{err, Result};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Every action and target kind this build links.
#[must_use]
pub fn registry() -> Registry {
    let mut r = Registry::new();
    actions::register(&mut r);
    r.action(SqlCheck)
        .action(PgBackup)
        .action(PgVerify)
        .target_kind(PostgresKind)
        .target_kind(RdsKind)
        .target_kind(Route53Kind);
    crate::ops::register(&mut r);
    crate::kubernetes::register(&mut r);
    r
}

/// An engine journaling into `repo` with this build's registry.
#[must_use]
pub fn engine(repo: &dr_core::repo::Repository) -> dr_core::runbook::Engine {
    dr_core::runbook::Engine::for_repository(registry(), repo)
}

/// [`engine`], with every run's single-flight lock the one `lock` names
/// (`k8s:CONTEXT/NAMESPACE/NAME`, see [`crate::open_lock`]) instead of the store's.
pub async fn engine_with_lock(
    repo: &dr_core::repo::Repository,
    lock: Option<&str>,
) -> Result<dr_core::runbook::Engine> {
    let engine = engine(repo);
    let Some(spec) = lock else { return Ok(engine) };
    let lock = crate::kubernetes::open_lock(spec).await?;
    Ok(engine.with_locks(Arc::new(move |_: &str| Ok(lock.clone()))))
}

fn text(fields: &Map<String, Value>, name: &str, kind: &str, target: &str) -> Result<String> {
    fields
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            err!(
                InvalidInput,
                "target {target:?} ({kind}) needs {name}: a string"
            )
        })
}

fn opt(fields: &Map<String, Value>, name: &str) -> Option<String> {
    fields.get(name).and_then(Value::as_str).map(str::to_owned)
}

struct PostgresKind;

#[async_trait]
impl TargetKind for PostgresKind {
    #[allow(clippy::unnecessary_literal_bound)] // the trait lends the name from self
    fn kind(&self) -> &str {
        "postgres"
    }
    fn fields(&self) -> Vec<Field> {
        vec![Field::required(
            "url",
            "postgres://…",
            "The server (a superuser, to promote or fence)",
        )]
    }
    async fn build(&self, name: &str, fields: &Map<String, Value>) -> Result<Target> {
        let conn = dr_pg::ConnInfo::parse(&text(fields, "url", "postgres", name)?)?;
        Ok(Target::Database(Arc::new(dr_pg::PgTarget::new(conn))))
    }
}

fn aws(fields: &Map<String, Value>) -> Result<dr_aws::AwsConfig> {
    dr_aws::AwsConfig::resolve(&dr_aws::AwsOverrides {
        region: opt(fields, "region"),
        endpoint: opt(fields, "endpoint"),
        profile: opt(fields, "profile"),
    })
}

struct RdsKind;

#[async_trait]
impl TargetKind for RdsKind {
    #[allow(clippy::unnecessary_literal_bound)] // the trait lends the name from self
    fn kind(&self) -> &str {
        "rds"
    }
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::required("instance", "string", "Instance identifier"),
            Field::optional("region", "string", "AWS region"),
            Field::optional("endpoint", "url", "Endpoint override"),
            Field::optional("profile", "string", "Named profile"),
        ]
    }
    async fn build(&self, name: &str, fields: &Map<String, Value>) -> Result<Target> {
        let rds = dr_aws::Rds::connect(&aws(fields)?).await?;
        let id = text(fields, "instance", "rds", name)?;
        Ok(Target::Database(Arc::new(dr_aws::RdsTarget::new(rds, id))))
    }
}

struct Route53Kind;

#[async_trait]
impl TargetKind for Route53Kind {
    #[allow(clippy::unnecessary_literal_bound)] // the trait lends the name from self
    fn kind(&self) -> &str {
        "route53"
    }
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::required("zone", "string", "Hosted zone name or id"),
            Field::required("name", "string", "Record name"),
            Field::optional("type", "string", "Record type (default CNAME)"),
            Field::optional("endpoint", "url", "Endpoint override"),
            Field::optional("profile", "string", "Named profile"),
        ]
    }
    async fn build(&self, name: &str, fields: &Map<String, Value>) -> Result<Target> {
        let r53 = dr_aws::Route53::connect(&aws(fields)?).await?;
        let zone = text(fields, "zone", "route53", name)?;
        let record = text(fields, "name", "route53", name)?;
        let rtype = opt(fields, "type").unwrap_or_else(|| "CNAME".into());
        let router = dr_aws::Route53Router::new(r53, &zone, &record, &rtype).await?;
        Ok(Target::Router(Arc::new(router)))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlCheckParams {
    url: dr_pg::ConnInfo,
    sql: Vec<String>,
}

struct SqlCheck;

#[async_trait]
impl Action for SqlCheck {
    fn spec(&self) -> ActionSpec {
        ActionSpec {
            name: "sql.check".into(),
            summary: "Runs SQL queries that must each return true or a non-zero count, and amcheck on the indexes.".into(),
            idempotent: true,
            params: vec![
                Field::required("url", "postgres://…", "The database"),
                Field::required("sql", "[string]", "Queries"),
            ],
            outputs: vec![Field::required("ok", "bool", "Every check passed"), Field::required("checks", "list", "Each query and what it returned")],
            open_outputs: false,
        }
    }
    fn check(&self, with: &Value) -> Result<()> {
        if with.get("url").is_some_and(dr_core::runbook::is_unknown) {
            return Ok(());
        }
        params::<SqlCheckParams>("sql.check", with).map(|_| ())
    }
    async fn plan(&self, _: &StepContext, with: &Value) -> Result<Vec<String>> {
        let n = with
            .get("sql")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        Ok(vec![format!("runs {n} read-only checks")])
    }
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let p: SqlCheckParams = params("sql.check", with)?;
        let r = dr_pg::check_server(&p.url, &p.sql).await?;
        if !r.ok {
            let failed: Vec<String> = r
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| format!("{} -> {}", c.sql, c.result))
                .collect();
            return Err(err!(
                Conflict,
                "step {:?}: checks failed on {}: {}",
                ctx.step,
                p.url,
                failed.join("; ")
            ));
        }
        let doc = serde_json::to_value(&r).unwrap_or(Value::Null);
        Ok(Outcome::Done(
            match json!({"ok": r.ok, "checks": doc["checks"]}) {
                Value::Object(m) => m,
                _ => Map::new(),
            },
        ))
    }
}

/// `url` beside the options of `drkit backup` (checked by `BackupOptions` itself).
#[derive(Deserialize)]
struct PgBackupParams {
    url: dr_pg::ConnInfo,
    #[serde(flatten)]
    options: Value,
}

struct PgBackup;

#[async_trait]
impl Action for PgBackup {
    fn spec(&self) -> ActionSpec {
        ActionSpec {
            name: "pg.backup".into(),
            summary:
                "Backs up a database into the run's repository (the options of `drkit backup`)."
                    .into(),
            idempotent: true,
            params: vec![
                Field::required("url", "postgres://…", "The database"),
                Field::optional("tags", "map", "Snapshot tags"),
            ],
            outputs: vec![
                Field::required("snapshot", "string", "The new snapshot's id"),
                Field::required("new_bytes", "int", "Bytes uploaded"),
            ],
            open_outputs: false,
        }
    }
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let p: PgBackupParams = params("pg.backup", with)?;
        let options: dr_pg::BackupOptions = params("pg.backup", &p.options)?;
        let snap = dr_pg::backup(
            ctx.repository()?,
            &p.url,
            &options,
            Arc::new(dr_core::progress::NoProgress),
        )
        .await?;
        Ok(Outcome::Done(
            match json!({"snapshot": snap.id.to_string(), "new_bytes": snap.stats.new_bytes}) {
                Value::Object(m) => m,
                _ => Map::new(),
            },
        ))
    }
}

struct PgVerify;

#[async_trait]
impl Action for PgVerify {
    fn spec(&self) -> ActionSpec {
        ActionSpec {
            name: "pg.verify".into(),
            summary: "Verifies snapshots of the run's repository (the options of `drkit verify`): chunks, or a restore into a scratch database with checks.".into(),
            idempotent: true,
            params: vec![
                Field::optional("snapshot", "string", "latest, an id or a prefix"),
                Field::optional("restore_into", "postgres://…", "Restore here and check"),
                Field::optional("checks", "[string]", "SQL after the restore"),
            ],
            outputs: vec![Field::required("ok", "bool", "Everything passed"), Field::required("restore_seconds", "number", "The measured restore time")],
            open_outputs: false,
        }
    }
    fn check(&self, with: &Value) -> Result<()> {
        params::<dr_pg::VerifyOptions>("pg.verify", with).map(|_| ())
    }
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let options: dr_pg::VerifyOptions = params("pg.verify", with)?;
        let out = dr_pg::verify(
            ctx.repository()?,
            &options,
            Arc::new(dr_core::progress::NoProgress),
        )
        .await?;
        if !out.ok {
            return Err(err!(Corrupt, "step {:?}: verification failed", ctx.step));
        }
        let secs = out
            .restore
            .as_ref()
            .map(|r| r.restore_duration.as_secs_f64());
        Ok(Outcome::Done(
            match json!({"ok": out.ok, "restore_seconds": secs}) {
                Value::Object(m) => m,
                _ => Map::new(),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use dr_core::runbook::Engine;

    fn engine() -> Engine {
        let store = dr_core::store::MemoryStore::new();
        Engine::new(
            super::registry(),
            store,
            std::sync::Arc::new(|n: &str| {
                Ok(std::sync::Arc::new(dr_core::fake::MemoryLock::new(n))
                    as std::sync::Arc<dyn dr_core::lock::Lock>)
            }),
        )
    }

    #[test]
    fn the_documented_and_example_runbooks_are_valid() {
        let docs = include_str!("../docs/runbooks.md");
        let start = docs.find("```yaml\n").expect("a yaml block") + 8;
        let end = start + docs[start..].find("```").unwrap();
        engine()
            .load(&docs[start..end], "docs/runbooks.md")
            .unwrap();
        // Every runbook of examples/runbooks (the drill's also runs in cli_demo).
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/runbooks");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                engine().load_file(&path).unwrap();
                checked += 1;
            }
        }
        assert!(checked >= 2, "failover.yaml and drill.yaml at least");
        let k8s = docs
            .find("name: app-to-dr-database")
            .expect("the Kubernetes example");
        let start = docs[..k8s].rfind("```yaml\n").unwrap() + 8;
        let end = start + docs[start..].find("```").unwrap();
        engine()
            .load(&docs[start..end], "docs/runbooks.md")
            .unwrap();
    }

    /// The actions table of docs/runbooks.md names every action of the build, and
    /// nothing else.
    #[test]
    fn every_action_is_documented() {
        let docs = include_str!("../docs/runbooks.md");
        let section = &docs[docs.find("## Actions").unwrap()..];
        let section = &section[..section.find("\n## ").unwrap()];
        let mut documented: Vec<String> = section
            .lines()
            .filter(|l| l.starts_with("| `"))
            .flat_map(|l| {
                let first = l.split('|').nth(1).unwrap_or_default();
                first
                    .split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        documented.sort();
        let mut built: Vec<String> = super::registry()
            .specs()
            .into_iter()
            .map(|s| s.name)
            .collect();
        built.sort();
        assert_eq!(documented, built);
    }
}
