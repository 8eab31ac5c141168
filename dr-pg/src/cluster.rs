//! Throwaway PostgreSQL clusters: `initdb` in a temp folder, a free port on 127.0.0.1,
//! stopped and deleted on drop. `drkit demo` and the test kit use them; so can a verify
//! that needs a scratch server.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dr_core::{err, Error, Result};
use tempfile::TempDir;

/// Options for a throwaway cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Extra `postgresql.conf` lines.
    pub extra_conf: String,
    /// Superuser password for TCP logins; `None` trusts local TCP logins.
    pub password: Option<String>,
    /// WAL segment size in MiB (`initdb --wal-segsize`); `None` for the default 16.
    pub wal_segment_mib: Option<u32>,
    /// Start writing WAL at this segment (`pg_resetwal -l` before the first start), to
    /// reach high segment numbers without writing that much.
    pub first_wal: Option<String>,
}

/// A running throwaway cluster.
#[derive(Debug)]
pub struct TempCluster {
    dir: TempDir,
    port: u16,
    bindir: PathBuf,
    password: Option<String>,
}

/// Whether this process runs as root.
pub(crate) fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Runs a server program, as `postgres` when we are root: initdb and postgres refuse root.
pub(crate) fn run_as_owner(program: &Path, args: &[&str]) -> Result<Output> {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args)
        .env_remove("PGPASSWORD")
        .output()
        .map_err(|e| Error::io(format!("running {}", program.display()), e))
}

pub(crate) fn chown_to_postgres(path: &Path) -> Result<()> {
    let ok = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(err!(PermissionDenied, "cannot hand {} to the postgres user (is there a `postgres` user? `apt-get install postgresql` creates it)", path.display()))
    }
}

impl TempCluster {
    /// The folder with `initdb` and `pg_ctl`: `PG_BINDIR`, else the newest `/usr/lib/postgresql/*/bin`.
    pub fn server_bindir() -> Result<PathBuf> {
        if let Ok(d) = std::env::var("PG_BINDIR") {
            let d = PathBuf::from(d);
            if d.join("initdb").is_file() {
                return Ok(d);
            }
        }
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
            .filter(|(_, p): &(u32, PathBuf)| {
                p.join("initdb").is_file() && p.join("pg_ctl").is_file()
            })
            .collect();
        found.sort();
        found.pop().map(|(_, p)| p).ok_or_else(|| {
            err!(NotFound, "PostgreSQL server programs (initdb, pg_ctl) not found; install them (Debian: apt-get install postgresql) or set PG_BINDIR")
        })
    }

    /// Creates and starts a cluster; blocks for the second or two that takes.
    pub fn start(options: &ClusterOptions) -> Result<Self> {
        let bindir = Self::server_bindir()?;
        let dir = tempfile::Builder::new()
            .prefix("drkit-pg-")
            .tempdir()
            .map_err(|e| Error::io("creating a temp folder", e))?;
        if is_root() {
            chown_to_postgres(dir.path())?;
        }
        let data = dir.path().join("data");
        create(&bindir, dir.path(), &data, options)?;
        let log = dir.path().join("postgres.log");
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let conf = format!(
                "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 40\nwal_level = replica\nmax_wal_senders = 5\n{}\n",
                dir.path().display(),
                options.extra_conf
            );
            std::fs::write(data.join("postgresql.auto.conf"), conf)
                .map_err(|e| Error::io("writing postgresql.auto.conf", e))?;
            let out = pg_ctl_start(&bindir, &data, &log)?;
            if out.status.success() {
                return Ok(Self {
                    dir,
                    port,
                    bindir,
                    password: options.password.clone(),
                });
            }
            last = std::fs::read_to_string(&log).unwrap_or_default();
        }
        Err(err!(
            External,
            "PostgreSQL did not start: {}",
            last.lines().last().unwrap_or("no log")
        ))
    }

    /// Starts a streaming replica of this cluster (`pg_basebackup -R -X stream -c fast`):
    /// a second throwaway cluster on its own port that follows this one until promoted.
    pub fn start_replica(&self) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("drkit-pg-replica-")
            .tempdir()
            .map_err(|e| Error::io("creating a temp folder", e))?;
        if is_root() {
            chown_to_postgres(dir.path())?;
        }
        let data = dir.path().join("data");
        let mut conninfo = format!("host=127.0.0.1 port={} user=postgres", self.port);
        if let Some(pw) = &self.password {
            let _ = write!(conninfo, " password={pw}");
        }
        let out = run_as_owner(
            &self.bindir.join("pg_basebackup"),
            &[
                "-d",
                &conninfo,
                "-D",
                path_str(&data),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
        )?;
        if !out.status.success() {
            return Err(err!(
                External,
                "pg_basebackup of the primary on port {} failed: {}",
                self.port,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let log = dir.path().join("postgres.log");
        let port = free_port()?;
        // The copy carries the primary's settings; later lines win.
        let mut auto = std::fs::read_to_string(data.join("postgresql.auto.conf"))
            .map_err(|e| Error::io("reading the replica's postgresql.auto.conf", e))?;
        let _ = write!(
            auto,
            "\nport = {port}\nunix_socket_directories = '{}'\narchive_mode = off\nhot_standby = on\n",
            dir.path().display()
        );
        std::fs::write(data.join("postgresql.auto.conf"), auto)
            .map_err(|e| Error::io("writing the replica's postgresql.auto.conf", e))?;
        let out = pg_ctl_start(&self.bindir, &data, &log)?;
        if !out.status.success() {
            let last = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(err!(
                External,
                "the replica did not start: {}",
                last.lines().last().unwrap_or("no log")
            ));
        }
        Ok(Self {
            dir,
            port,
            bindir: self.bindir.clone(),
            password: self.password.clone(),
        })
    }

    /// The TCP port on 127.0.0.1.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's bin folder.
    #[must_use]
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The cluster's folder (data directory under `data/`).
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A URL for database `db`, with the password when there is one.
    #[must_use]
    pub fn dsn(&self, db: &str) -> String {
        match &self.password {
            Some(pw) => format!("postgres://postgres:{pw}@127.0.0.1:{}/{db}", self.port),
            None => format!("postgres://postgres@127.0.0.1:{}/{db}", self.port),
        }
    }
}

/// `pg_ctl start`, waiting up to a minute, logging to `log`.
fn pg_ctl_start(bindir: &Path, data: &Path, log: &Path) -> Result<Output> {
    run_as_owner(
        &bindir.join("pg_ctl"),
        &[
            "-D",
            path_str(data),
            "-l",
            path_str(log),
            "-w",
            "-t",
            "60",
            "start",
        ],
    )
}

/// A port on 127.0.0.1 nothing listens on now.
fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::io("finding a free port", e))
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = run_as_owner(
            &self.bindir.join("pg_ctl"),
            &["-D", path_str(&data), "-m", "immediate", "-w", "stop"],
        );
    }
}

/// `initdb` into `data` (and `pg_resetwal -l` when a first WAL segment is asked for).
fn create(bindir: &Path, dir: &Path, data: &Path, options: &ClusterOptions) -> Result<()> {
    let mut initdb: Vec<String> = [
        "-D",
        path_str(data),
        "-U",
        "postgres",
        "-E",
        "UTF8",
        "--locale=C.UTF-8",
        "--no-sync",
        "--auth-local=trust",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    if let Some(pw) = &options.password {
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, pw).map_err(|e| Error::io("writing the password file", e))?;
        if is_root() {
            chown_to_postgres(&pwfile)?;
        }
        initdb.extend([
            "--auth-host=scram-sha-256".to_owned(),
            format!("--pwfile={}", pwfile.display()),
        ]);
    } else {
        initdb.push("--auth-host=trust".to_owned());
    }
    if let Some(mib) = options.wal_segment_mib {
        initdb.push(format!("--wal-segsize={mib}"));
    }
    let args: Vec<&str> = initdb.iter().map(String::as_str).collect();
    let out = run_as_owner(&bindir.join("initdb"), &args)?;
    let _ = std::fs::remove_file(dir.join("pwfile"));
    if !out.status.success() {
        return Err(err!(
            External,
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if let Some(first) = &options.first_wal {
        let out = run_as_owner(
            &bindir.join("pg_resetwal"),
            &["-l", first, "-D", path_str(data)],
        )?;
        if !out.status.success() {
            return Err(err!(
                External,
                "pg_resetwal -l {first} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}
