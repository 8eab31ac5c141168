//! Runs the `drkit` binary as an operator would, with its own environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The `drkit` binary pointed at one repository.
#[derive(Debug, Clone)]
pub struct Drkit {
    /// The binary (`env!("CARGO_BIN_EXE_drkit")` in dr-cli's tests).
    pub bin: PathBuf,
    /// `--repo` URL.
    pub repo: String,
    /// Extra environment (secrets, AWS settings).
    pub env: Vec<(String, String)>,
    /// Run as the `postgres` user (when the tests run as root), as PostgreSQL runs
    /// `archive_command`, so both can write one local repository.
    pub as_postgres: bool,
}

impl Drkit {
    /// A passphrase-encrypted repository in folder `dir`.
    #[must_use]
    pub fn local(bin: &str, dir: &Path) -> Self {
        Self::at(bin, &format!("file://{}", dir.display()))
    }

    /// A passphrase-encrypted repository at `url`.
    #[must_use]
    pub fn at(bin: &str, url: &str) -> Self {
        Self {
            bin: PathBuf::from(bin),
            repo: url.to_owned(),
            env: vec![("DRKIT_PASSWORD".into(), "cli test passphrase".into())],
            as_postgres: false,
        }
    }

    /// With more environment variables.
    #[must_use]
    pub fn with_env<K: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, String)>,
    ) -> Self {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v)));
        self
    }

    /// A command with `--repo` and the environment set, and nothing inherited that could
    /// change its behaviour.
    #[must_use]
    pub fn cmd(&self, args: &[&str]) -> Command {
        let root = std::fs::metadata("/proc/self")
            .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
        let mut c = if self.as_postgres && root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&self.bin);
            c
        } else {
            Command::new(&self.bin)
        };
        c.arg("--repo").arg(&self.repo).args(args);
        for var in [
            "DRKIT_REPO",
            "PGPASSWORD",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ENDPOINT_URL",
            "AWS_PROFILE",
        ] {
            c.env_remove(var);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs and returns what it printed.
    #[must_use]
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// `drkit --json run BOOK --var NAME=VALUE …`: what it printed (the run document on
    /// stdout, whatever the outcome).
    #[must_use]
    pub fn run_book(&self, book: &str, vars: &[String]) -> Output {
        let mut args = vec!["--json", "run", book];
        for v in vars {
            args.extend(["--var", v.as_str()]);
        }
        self.run(&args)
    }

    /// Runs with --json, expects success, returns the document.
    #[allow(clippy::must_use_candidate)] // tests often run a command for its effect
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "drkit {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "drkit {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Waits (up to a minute) until the journal of the newest run shows `step` running;
    /// returns the run's id.
    #[must_use]
    pub fn wait_step_started(&self, step: &str) -> String {
        self.wait_step_state(step, "running")
    }

    /// Waits (up to a minute) until the journal of the newest run shows `step` in `state`
    /// (`running`, `succeeded`, …); returns the run's id.
    #[must_use]
    pub fn wait_step_state(&self, step: &str, state: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
        loop {
            let runs = self.json(&["runs"]);
            if let Some(id) = runs
                .as_array()
                .and_then(|a| a.last())
                .and_then(|r| r["id"].as_str())
            {
                let shown = self.json(&["runs", "show", id]);
                if shown["steps"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s["id"] == step && s["state"] == state))
                {
                    return id.to_owned();
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "step {step} never reached {state}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}
