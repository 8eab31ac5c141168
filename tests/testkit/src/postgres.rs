//! Throwaway PostgreSQL clusters: `initdb` in a temp folder, a free port, torn down on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// The superuser password every test cluster uses for TCP logins.
pub const PASSWORD: &str = "drkit-test-pw";

/// A running PostgreSQL cluster owned by a test.
pub struct PgCluster {
    dir: TempDir,
    port: u16,
    bindir: PathBuf,
}

fn bindir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("PG_BINDIR") {
        return Some(PathBuf::from(d));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p): &(u32, PathBuf)| p.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs a server program, as `postgres` when we are root (initdb refuses root).
fn run_as_owner(program: &Path, args: &[&str]) -> Output {
    let mut cmd = if crate::is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args).env_remove("PGPASSWORD").output().unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
}

impl PgCluster {
    /// Starts a new cluster, or returns `None` (locally) when PostgreSQL is not installed.
    #[must_use]
    pub fn start() -> Option<Self> {
        Self::start_with("")
    }

    /// Starts a new cluster with extra `postgresql.conf` lines.
    #[must_use]
    pub fn start_with(extra_conf: &str) -> Option<Self> {
        let Some(bindir) = bindir() else {
            crate::missing("PostgreSQL server", "install it with `apt-get install postgresql` or set PG_BINDIR");
            return None;
        };
        let dir = tempfile::Builder::new().prefix("drkit-pg-").tempdir().unwrap();
        if crate::is_root() {
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap().success();
            assert!(ok, "chown of the cluster folder to postgres failed");
        }
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        if crate::is_root() {
            Command::new("chown").args(["postgres:postgres"]).arg(&pwfile).status().unwrap();
        }
        let out = run_as_owner(
            &bindir.join("initdb"),
            &["-D", data.to_str().unwrap(), "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile", pwfile.to_str().unwrap(), "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
        );
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_port();
            let conf = format!(
                "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 40\nwal_level = replica\nmax_wal_senders = 5\n{extra_conf}\n",
                dir.path().display()
            );
            std::fs::write(data.join("postgresql.auto.conf"), conf).unwrap();
            let log = dir.path().join("pg.log");
            let out = run_as_owner(&bindir.join("pg_ctl"), &["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-w", "-t", "60", "start"]);
            if out.status.success() {
                return Some(Self { dir, port, bindir });
            }
            last_err = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("PostgreSQL did not start: {last_err}");
    }

    /// The TCP port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's bin folder.
    #[must_use]
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// A URL for database `db`, with the superuser password.
    #[must_use]
    pub fn dsn(&self, db: &str) -> String {
        format!("postgres://postgres:{PASSWORD}@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL through psql and returns its unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self.psql_raw(db, sql);
        assert!(out.status.success(), "psql failed on {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
    }

    /// Runs SQL through psql and returns the whole output, failed or not.
    #[must_use]
    pub fn psql_raw(&self, db: &str, sql: &str) -> Output {
        Command::new(self.bindir.join("psql"))
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", db, "-c", sql])
            .env("PGPASSWORD", PASSWORD)
            .output()
            .unwrap()
    }

    /// Runs a client program of the server's bin folder (pg_dump, ...) against `db`.
    #[must_use]
    pub fn tool(&self, program: &str, db: &str, args: &[&str]) -> Output {
        Command::new(self.bindir.join(program))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres"])
            .args(args)
            .arg(if program == "pg_dumpall" { "-l" } else { "-d" })
            .arg(db)
            .env("PGPASSWORD", PASSWORD)
            .output()
            .unwrap()
    }

    /// A connected client for `db`.
    pub async fn client(&self, db: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.dsn(db), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = run_as_owner(&self.bindir.join("pg_ctl"), &["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"]);
    }
}
