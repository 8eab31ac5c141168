//! Throwaway PostgreSQL clusters for tests, with psql helpers.

use std::path::Path;
use std::process::{Command, Output};

use dr_pg::{ClusterOptions, TempCluster};

/// The superuser password every test cluster uses for TCP logins.
pub const PASSWORD: &str = "drkit-test-pw";

/// A running PostgreSQL cluster owned by a test; stopped on drop, even after a panic.
pub struct PgCluster {
    inner: TempCluster,
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
        Self::start_with_options(ClusterOptions {
            extra_conf: extra_conf.to_owned(),
            ..ClusterOptions::default()
        })
    }

    /// Starts a new cluster with these options; the password is always [`PASSWORD`].
    #[must_use]
    pub fn start_with_options(options: ClusterOptions) -> Option<Self> {
        if TempCluster::server_bindir().is_err() {
            crate::missing(
                "PostgreSQL server",
                "install it with `apt-get install postgresql` or set PG_BINDIR",
            );
            return None;
        }
        let options = ClusterOptions {
            password: Some(PASSWORD.to_owned()),
            ..options
        };
        Some(Self {
            inner: TempCluster::start(&options).unwrap_or_else(|e| panic!("{}", e.full_message())),
        })
    }

    /// A shell command running `pg_ctl ARGS` on this cluster as its owner (`stop -m
    /// fast`, `start -w`): a runbook's restart command in a test.
    #[must_use]
    pub fn pg_ctl(&self, args: &str) -> String {
        let root = std::fs::metadata("/proc/self")
            .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
        format!(
            "{}{} -D {} -l {} {args}",
            if root { "runuser -u postgres -- " } else { "" },
            self.bindir().join("pg_ctl").display(),
            self.inner.dir().join("data").display(),
            self.inner.dir().join("restart.log").display(),
        )
    }

    /// Starts a streaming replica of this cluster (`pg_basebackup -R`).
    #[must_use]
    pub fn start_replica(&self) -> Self {
        Self {
            inner: self
                .inner
                .start_replica()
                .unwrap_or_else(|e| panic!("{}", e.full_message())),
        }
    }

    /// The TCP port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.inner.port()
    }

    /// The server's bin folder.
    #[must_use]
    pub fn bindir(&self) -> &Path {
        self.inner.bindir()
    }

    /// A URL for database `db`, with the superuser password.
    #[must_use]
    pub fn dsn(&self, db: &str) -> String {
        self.inner.dsn(db)
    }

    /// Runs SQL through psql and returns its unaligned, tuples-only output.
    #[allow(clippy::must_use_candidate)] // tests often run psql for its effect
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self.tool(
            "psql",
            db,
            &["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
        );
        assert!(
            out.status.success(),
            "psql failed on {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
    }

    /// Runs a client program of the server's bin folder (psql, pg_dump, ...) against `db`.
    #[must_use]
    pub fn tool(&self, program: &str, db: &str, args: &[&str]) -> Output {
        Command::new(self.bindir().join(program))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port().to_string(),
                "-U",
                "postgres",
            ])
            .args(args)
            .arg(if program == "pg_dumpall" { "-l" } else { "-d" })
            .arg(db)
            .env("PGPASSWORD", PASSWORD)
            .output()
            .unwrap()
    }

    /// Creates database `db` with an `items` table of `rows` generated rows (id, sku,
    /// qty, price, meta), the sample data of the CLI tests.
    pub fn fill_items(&self, db: &str, rows: u64) {
        self.psql("postgres", &format!("CREATE DATABASE {db}"));
        self.psql(
            db,
            &format!(
                "CREATE TABLE items (id bigint PRIMARY KEY, sku text, qty int, price numeric(10,2), meta jsonb); \
                 INSERT INTO items SELECT g, 'SKU-' || md5(g::text), g % 50, (g % 10000) / 100.0, jsonb_build_object('bin', g % 300) \
                 FROM generate_series(1, {rows}) g"
            ),
        );
    }

    /// A checksum of every table and materialized view (rows in text form, sorted),
    /// every large object and every sequence's state in `db`: two databases with equal
    /// sums hold the same data.
    #[must_use]
    pub fn content_sums(&self, db: &str) -> Vec<String> {
        self.psql(db, CONTENT_SUMS)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// `pg_dump --schema-only` of `db`, without the random restrict-key lines of
    /// pg_dump ≥ 15.14: two databases with equal schemas give equal text.
    #[must_use]
    pub fn schema(&self, db: &str) -> String {
        let out = self.tool("pg_dump", db, &["--schema-only"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A connected client for `db`.
    pub async fn client(&self, db: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.dsn(db), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    }
}

const CONTENT_SUMS: &str = r"
CREATE FUNCTION pg_temp.sums() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE r record; s text;
BEGIN
  FOR r IN SELECT format('%I.%I', n.nspname, c.relname) AS t FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1
  LOOP
    EXECUTE format('SELECT count(*) || '':'' || coalesce(md5(string_agg(x::text, '''' ORDER BY x::text)), ''-'') FROM %s x', r.t) INTO s;
    RETURN NEXT r.t || ' ' || s;
  END LOOP;
  RETURN NEXT 'large objects ' || (SELECT coalesce(md5(string_agg(oid::text || ':' || encode(lo_get(oid), 'hex'), ',' ORDER BY oid)), '-') FROM pg_largeobject_metadata);
  FOR r IN SELECT format('%I.%I', schemaname, sequencename) AS q FROM pg_sequences ORDER BY 1 LOOP
    EXECUTE format('SELECT last_value || '' '' || is_called FROM %s', r.q) INTO s;
    RETURN NEXT r.q || ' ' || s;
  END LOOP;
END $$;
SELECT * FROM pg_temp.sums();
";
