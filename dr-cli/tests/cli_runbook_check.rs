//! `drkit runbook check` (and so `plan` and `run`) against the corpus of
//! `tests/runbooks`: each bad runbook is refused with every problem its header names, at
//! its line and column, and nothing else; each good one, the examples and the runbooks of
//! docs/runbooks.md pass. The JSON Schema's verdict on the same files is tested in
//! `dr-py/tests/test_runbook_schema.py`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `.yaml` files of `dir`; with `deep`, of its subfolders too (one per seed system).
fn yaml_files_in(dir: &Path, deep: bool) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for p in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
        if p.is_dir() && deep {
            files.extend(yaml_files_in(&p, deep));
        } else if p.extension().is_some_and(|e| e == "yaml") {
            files.push(p);
        }
    }
    files.sort();
    files
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    yaml_files_in(dir, false)
}

/// `drkit runbook check --json FILE`: exit status and document.
fn check(file: &Path) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_drkit"))
        .args(["runbook", "check", "--json"])
        .arg(file)
        .env_remove("DRKIT_REPO")
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{}: not JSON ({e}): {}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), doc)
}

/// One expected problem: its place (when it has one) and part of its message.
struct Expected {
    at: Option<(u64, u64)>,
    text: String,
}

fn expectations(text: &str, word: &str) -> Vec<Expected> {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(&format!("# {word} ")))
        .map(|rest| {
            let (first, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            match first
                .split_once(':')
                .and_then(|(l, c)| Some((l.parse().ok()?, c.parse().ok()?)))
            {
                Some(at) => Expected {
                    at: Some(at),
                    text: tail.to_owned(),
                },
                None => Expected {
                    at: None,
                    text: rest.to_owned(),
                },
            }
        })
        .collect()
}

fn matches(problem: &Value, e: &Expected) -> bool {
    let text = format!(
        "{}; {}",
        problem["message"].as_str().unwrap_or(""),
        problem["fix"].as_str().unwrap_or("")
    );
    let place = problem["at"]
        .as_object()
        .map(|a| (a["line"].as_u64().unwrap(), a["column"].as_u64().unwrap()));
    text.contains(&e.text) && e.at.is_none_or(|at| place == Some(at))
}

#[test]
fn every_bad_runbook_is_refused_with_each_problem_at_its_place() {
    let files = yaml_files(&root().join("tests/runbooks/bad"));
    assert!(files.len() >= 10, "the corpus is there: {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let problems = expectations(&text, "problem");
        let refused = expectations(&text, "refused");
        assert!(
            problems.is_empty() != refused.is_empty(),
            "{}: say what is expected (# problem or # refused)",
            file.display()
        );
        let (status, doc) = check(&file);
        assert_eq!(status, 1, "{}: refused: {doc}", file.display());
        if let Some(e) = refused.first() {
            // Not a runbook at all: that one problem, with its place.
            let found = doc["problems"].as_array().unwrap();
            assert_eq!(found.len(), 1, "{}: {doc:#}", file.display());
            assert!(
                matches(&found[0], e),
                "{}: refused at {:?} with {:?}: {doc:#}",
                file.display(),
                e.at,
                e.text
            );
            continue;
        }
        assert_eq!(doc["ok"], false);
        let found = doc["problems"].as_array().unwrap();
        for e in &problems {
            assert!(
                found.iter().any(|p| matches(p, e)),
                "{}: a problem {:?} at {:?} among {}",
                file.display(),
                e.text,
                e.at,
                serde_json::to_string_pretty(found).unwrap()
            );
        }
        assert_eq!(
            found.len(),
            problems.len(),
            "{}: every problem at once, and only those: {}",
            file.display(),
            serde_json::to_string_pretty(found).unwrap()
        );
        // Top-level problems have a place too.
        assert!(
            found.iter().all(|p| p["at"].is_object()),
            "{}: {found:?}",
            file.display()
        );
    }
}

#[test]
fn plan_and_run_name_a_bad_runbook_before_asking_for_a_repository() {
    let file = root().join("tests/runbooks/bad/top-level.yaml");
    for command in [&["plan"][..], &["run", "--yes"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_drkit"))
            .args(command)
            .arg(&file)
            .env_remove("DRKIT_REPO")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("has 6 problems")
                && err.contains("top-level.yaml:9:1: unknown field \"colour\""),
            "{command:?}: {err}"
        );
    }
}

#[test]
fn good_runbooks_examples_and_documented_runbooks_pass() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = yaml_files(&root().join("tests/runbooks/good"));
    files.extend(yaml_files_in(&root().join("examples/runbooks"), true));
    // Every complete runbook of the docs (a block starting `version: 1`).
    let docs = std::fs::read_to_string(root().join("docs/runbooks.md")).unwrap();
    for (i, block) in docs.split("```yaml\n").skip(1).enumerate() {
        let block = &block[..block.find("```").unwrap()];
        if block.starts_with("version: 1") {
            let f = dir.path().join(format!("docs-{i}.yaml"));
            std::fs::write(&f, block).unwrap();
            files.push(f);
        }
    }
    assert!(files.len() >= 5, "{files:?}");
    for file in files {
        let (status, doc) = check(&file);
        assert_eq!(status, 0, "{}: {doc:#}", file.display());
        assert_eq!(doc["ok"], true);
        assert!(doc["steps"].as_u64().unwrap() > 0);
    }
}
