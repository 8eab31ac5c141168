//! A real redis-server (Debian's) on a free loopback port, in a temporary folder, killed
//! when its handle drops; `redis-cli` as the outside client that fills and reads it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running redis-server.
pub struct Redis {
    child: Child,
    /// Its port.
    pub port: u16,
    /// Its password, if it has one.
    pub password: Option<String>,
    dir: tempfile::TempDir,
}

impl Redis {
    /// Starts an empty server (with `requirepass` when `password` is given), or returns
    /// `None` locally when redis-server is not installed.
    #[must_use]
    pub fn start(password: Option<&str>) -> Option<Self> {
        Self::start_in(tempfile::tempdir().unwrap(), password)
    }

    /// Starts a server on the RDB in `dir` (a data folder a restore filled).
    #[must_use]
    pub fn start_in(dir: tempfile::TempDir, password: Option<&str>) -> Option<Self> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            crate::missing(
                "redis-server",
                "run `scripts/setup --services` (apt-get install redis-server)",
            );
            return None;
        }
        let port = crate::free_port();
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir.path())
        .args(["--daemonize", "no", "--protected-mode", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if let Some(p) = password {
            cmd.args(["--requirepass", p]);
        }
        let mut child = cmd.spawn().expect("redis-server starts");
        crate::services::wait_for_port(port, &mut child, "redis-server");
        let r = Self {
            child,
            port,
            password: password.map(str::to_owned),
            dir,
        };
        // Loading an RDB answers LOADING until done.
        for _ in 0..600 {
            if r.try_cli(&["PING"]).is_some_and(|o| o.trim() == "PONG") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Some(r)
    }

    /// `redis://:password@127.0.0.1:port`.
    #[must_use]
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Its data folder.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let mut c = Command::new("redis-cli");
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(p) = &self.password {
            c.env("REDISCLI_AUTH", p);
        }
        let out = c.args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `redis-cli ARGS…` against it; its output.
    #[must_use]
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("redis-cli {:?} … failed", &args[..args.len().min(3)]))
    }

    /// Every key of database `db` with its type, its contents as `redis-cli` reads them
    /// (members of sets and hashes sorted: their order is the server's own) and whether
    /// it has a TTL.
    #[must_use]
    pub fn contents(&self, db: u32) -> std::collections::BTreeMap<String, String> {
        let n = db.to_string();
        let keys = self.cli(&["-n", &n, "--scan"]);
        keys.lines()
            .filter(|k| !k.is_empty())
            .map(|k| {
                let ty = self.cli(&["-n", &n, "TYPE", k]).trim().to_owned();
                let read: Vec<Vec<&str>> = match ty.as_str() {
                    "string" => vec![vec!["GET", k]],
                    "hash" => vec![vec!["HGETALL", k]],
                    "list" => vec![vec!["LRANGE", k, "0", "-1"]],
                    "set" => vec![vec!["SMEMBERS", k]],
                    "zset" => vec![vec!["ZRANGE", k, "0", "-1", "WITHSCORES"]],
                    "stream" => vec![
                        vec!["XRANGE", k, "-", "+"],
                        vec!["XINFO", "GROUPS", k],
                        vec!["XPENDING", k, "workers"],
                    ],
                    other => panic!("key {k} has type {other}"),
                };
                let mut body = String::new();
                for args in read {
                    let mut all = vec!["-n", n.as_str()];
                    all.extend(args.iter().copied());
                    let out = self.cli(&all);
                    let mut lines: Vec<&str> = out.lines().collect();
                    if matches!(ty.as_str(), "set") {
                        lines.sort_unstable();
                    }
                    if ty == "hash" {
                        let mut pairs: Vec<String> = lines.chunks(2).map(|p| p.join("=")).collect();
                        pairs.sort();
                        body.push_str(&pairs.join("\n"));
                    } else {
                        body.push_str(&lines.join("\n"));
                    }
                    body.push('\n');
                }
                let ttl: i64 = self.cli(&["-n", &n, "PTTL", k]).trim().parse().unwrap();
                (k.to_owned(), format!("{ty} ttl:{}\n{body}", ttl > 0))
            })
            .collect()
    }

    /// Where a server keeps its RDB by default.
    #[must_use]
    pub fn rdb_path(dir: &Path) -> PathBuf {
        dir.join("dump.rdb")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
