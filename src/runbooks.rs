//! The runbook registry of this build: the core actions and those of each adapter
//! (Postgres, AWS, Kubernetes), composed here; each adapter owns its actions and target
//! kinds in its `runbook` module.

use std::sync::Arc;

use dr_core::runbook::Registry;
use dr_core::Result;

/// Every action and target kind this build links.
#[must_use]
pub fn registry() -> Registry {
    let mut r = Registry::new();
    dr_core::runbook::actions::register(&mut r);
    dr_pg::runbook::register(&mut r, Arc::new(crate::open_store));
    dr_aws::runbook::register(&mut r);
    dr_k8s::runbook::register(&mut r);
    r
}

/// An engine journaling into `repo` with this build's registry.
#[must_use]
pub fn engine(repo: &dr_core::repo::Repository) -> dr_core::runbook::Engine {
    dr_core::runbook::Engine::for_repository(registry(), repo)
}

/// [`engine`], with every run's single-flight lock the one `lock` names
/// (`k8s:CONTEXT/NAMESPACE/NAME`, see [`dr_k8s::runbook::open_lock`]) instead of the
/// store's.
pub async fn engine_with_lock(
    repo: &dr_core::repo::Repository,
    lock: Option<&str>,
) -> Result<dr_core::runbook::Engine> {
    let engine = engine(repo);
    let Some(spec) = lock else { return Ok(engine) };
    let lock = dr_k8s::runbook::open_lock(spec).await?;
    Ok(engine.with_locks(Arc::new(move |_: &str| Ok(lock.clone()))))
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
        let drill = docs
            .find("name: shop-failover-drill")
            .expect("the drill example");
        let start = docs[..drill].rfind("```yaml\n").unwrap() + 8;
        let end = start + docs[start..].find("```").unwrap();
        let (rb, _) = engine()
            .load(&docs[start..end], "docs/runbooks.md")
            .unwrap();
        assert!(rb.drill.is_some());
        let k8s = docs
            .find("name: app-to-dr-database")
            .expect("the Kubernetes example");
        let start = docs[..k8s].rfind("```yaml\n").unwrap() + 8;
        let end = start + docs[start..].find("```").unwrap();
        engine()
            .load(&docs[start..end], "docs/runbooks.md")
            .unwrap();
    }

    /// docs/actions.md is the reference the types give (`DRKIT_BLESS=1` rewrites it).
    #[test]
    fn the_actions_reference_is_generated_from_the_types() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/actions.md");
        let generated = super::registry().reference_markdown();
        if std::env::var_os("DRKIT_BLESS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/actions.md differs from the actions' types: run `DRKIT_BLESS=1 cargo test -p drkit --lib` and commit it"
        );
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
