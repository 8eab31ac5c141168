//! Finding the PostgreSQL client programs.

use std::path::{Path, PathBuf};

use dr_core::{err, Result};
use serde::Serialize;

/// Where pg_dump, pg_restore, pg_dumpall and psql come from, and how that was decided.
#[derive(Debug, Clone, Serialize)]
pub struct PgTools {
    /// The folder holding the programs.
    pub bindir: PathBuf,
    /// How it was found: `PG_BINDIR`, `pg_config`, or a scanned folder.
    pub found_by: String,
}

const NEEDED: [&str; 4] = ["pg_dump", "pg_restore", "pg_dumpall", "psql"];

fn complete(dir: &Path) -> bool {
    NEEDED.iter().all(|p| dir.join(p).is_file())
}

impl PgTools {
    /// Looks in `PG_BINDIR`, then `pg_config --bindir`, then the newest `/usr/lib/postgresql/*/bin`.
    pub fn discover() -> Result<Self> {
        if let Ok(dir) = std::env::var("PG_BINDIR") {
            let dir = PathBuf::from(dir);
            if complete(&dir) {
                return Ok(Self {
                    bindir: dir,
                    found_by: "PG_BINDIR".into(),
                });
            }
            return Err(err!(
                NotFound,
                "PG_BINDIR={} does not hold {}; point it at a PostgreSQL bin folder",
                dir.display(),
                NEEDED.join(", ")
            ));
        }
        if let Ok(out) = std::process::Command::new("pg_config")
            .arg("--bindir")
            .output()
        {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if out.status.success() && complete(&dir) {
                return Ok(Self {
                    bindir: dir,
                    found_by: "pg_config --bindir".into(),
                });
            }
        }
        let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let major = e.file_name().to_str()?.parse::<u32>().ok()?;
                Some((major, e.path().join("bin")))
            })
            .filter(|(_, dir)| complete(dir))
            .collect();
        candidates.sort();
        if let Some((_, dir)) = candidates.pop() {
            return Ok(Self {
                bindir: dir,
                found_by: "/usr/lib/postgresql/*/bin".into(),
            });
        }
        Err(err!(
            NotFound,
            "PostgreSQL client programs (pg_dump, pg_restore, pg_dumpall, psql) not found; install them (Debian: apt-get install postgresql-client) or set PG_BINDIR"
        ))
    }

    /// The full path of program `name`.
    #[must_use]
    pub fn program(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }

    /// `pg_dump --version`, e.g. `pg_dump (PostgreSQL) 15.18`.
    #[must_use]
    pub fn version(&self) -> String {
        std::process::Command::new(self.program("pg_dump"))
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    }
}
