//! Where a database is: a parsed DSN that never prints its password.

pub mod tls;

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dr_core::{err, Result};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

use self::tls::{SslMode, TlsSettings};
use crate::error::connect_error;
use tokio_postgres_rustls::MakeRustlsConnect;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A Postgres connection target, parsed from a URL (`postgres://user:pw@host:port/db`) or
/// a libpq key/value string (`host=… dbname=…`). Missing parts fall back to the libpq
/// environment (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`,
/// `PGSSLROOTCERT`). TLS follows libpq's `sslmode` and `sslrootcert` (see [`crate::tls`]).
#[derive(Clone)]
pub struct ConnInfo {
    config: Config,
    tls: TlsSettings,
    /// Built on the first TLS connect (root certificates read once), shared by clones.
    connector: Arc<OnceLock<MakeRustlsConnect>>,
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnInfo({})", self.redacted())
    }
}

impl fmt::Display for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Written without the password (`postgres://user@host:port/db`).
impl serde::Serialize for ConnInfo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

/// Read from a DSN, as [`ConnInfo::parse`] does (a runbook's `with:`, a JSON option).
impl<'de> serde::Deserialize<'de> for ConnInfo {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let dsn = String::deserialize(d)?;
        Self::parse(&dsn).map_err(|e| serde::de::Error::custom(e.message()))
    }
}

impl schemars::JsonSchema for ConnInfo {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PostgresUrl".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "x-type": "postgres://…",
            "description": "A Postgres URL: postgres://user:password@host:port/database (a password belongs in a secret variable)"
        })
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl ConnInfo {
    /// Parses a DSN; the error never echoes a password.
    pub fn parse(dsn: &str) -> Result<Self> {
        let (rest, tls_params) = tls::extract(dsn)
            .map_err(|e| e.context(format!("invalid Postgres URL {}", redact_text(dsn))))?;
        let tls = TlsSettings::from_params(&tls_params)?;
        let mut config = Config::from_str(&rest).map_err(|e| {
            err!(
                InvalidInput,
                "invalid Postgres URL {}: {e}; use postgres://user:password@host:port/database",
                redact_text(dsn)
            )
        })?;
        if config.get_hosts().is_empty() {
            config.host(env("PGHOST").unwrap_or_else(|| "localhost".into()));
        }
        if config.get_ports().is_empty() {
            if let Some(port) = env("PGPORT").and_then(|p| p.parse().ok()) {
                config.port(port);
            }
        }
        if config.get_user().is_none() {
            config.user(
                env("PGUSER")
                    .or_else(|| env("USER"))
                    .unwrap_or_else(|| "postgres".into()),
            );
        }
        if config.get_password().is_none() {
            if let Some(pw) = env("PGPASSWORD") {
                config.password(pw);
            }
        }
        if config.get_dbname().is_none() {
            let db = env("PGDATABASE")
                .unwrap_or_else(|| config.get_user().unwrap_or("postgres").to_owned());
            config.dbname(db);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        config.ssl_mode(tls.mode.wire());
        if config.get_application_name().is_none() {
            config.application_name("drkit");
        }
        Ok(Self {
            config,
            tls,
            connector: Arc::default(),
        })
    }

    /// How this connection uses TLS.
    #[must_use]
    pub fn tls(&self) -> &TlsSettings {
        &self.tls
    }

    /// The same server, another database.
    #[must_use]
    pub fn with_dbname(&self, dbname: &str) -> Self {
        let mut config = self.config.clone();
        config.dbname(dbname);
        Self {
            config,
            tls: self.tls.clone(),
            connector: self.connector.clone(),
        }
    }

    /// The database name.
    #[must_use]
    pub fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or("postgres")
    }

    /// The user name.
    #[must_use]
    pub fn user(&self) -> &str {
        self.config.get_user().unwrap_or("postgres")
    }

    /// The connect timeout.
    #[must_use]
    pub fn connect_timeout(&self) -> Duration {
        self.config
            .get_connect_timeout()
            .copied()
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
    }

    fn host(&self) -> String {
        match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        }
    }

    fn port(&self) -> u16 {
        self.config.get_ports().first().copied().unwrap_or(5432)
    }

    /// `host:port`, for messages.
    #[must_use]
    pub fn server(&self) -> String {
        format!("{}:{}", self.host(), self.port())
    }

    /// `postgres://user@host:port/db[?sslmode=…]`, never with the password.
    #[must_use]
    pub fn redacted(&self) -> String {
        format!(
            "postgres://{}@{}/{}{}",
            self.user(),
            self.server(),
            self.dbname(),
            self.tls.suffix()
        )
    }

    /// Connects, with the configured timeout and TLS settings; the connection runs on a
    /// background task.
    pub async fn connect(&self) -> Result<Client> {
        if self.tls.mode == SslMode::Disable {
            let (client, connection) = self
                .config
                .connect(NoTls)
                .await
                .map_err(|e| connect_error(self, e))?;
            tokio::spawn(drive(connection));
            return Ok(client);
        }
        // Boxed: the TLS handshake makes this future large, and every caller awaits it.
        let connector = if let Some(c) = self.connector.get() {
            c.clone()
        } else {
            let c = self.tls.connector()?;
            let _ = self.connector.set(c.clone());
            c
        };
        let (client, connection) = Box::pin(self.config.connect(connector))
            .await
            .map_err(|e| connect_error(self, e))?;
        tokio::spawn(drive(connection));
        Ok(client)
    }

    /// Arguments and environment for libpq programs (pg_dump, pg_restore, psql): the
    /// password goes in `PGPASSWORD`, never on a command line that `ps` shows.
    pub(crate) fn apply_to(&self, cmd: &mut tokio::process::Command) {
        cmd.arg("--host").arg(self.host());
        cmd.arg("--port").arg(self.port().to_string());
        cmd.arg("--username").arg(self.user());
        cmd.env_remove("PGSERVICE");
        match self.config.get_password() {
            Some(pw) => cmd.env("PGPASSWORD", String::from_utf8_lossy(pw).into_owned()),
            None => cmd.env_remove("PGPASSWORD"),
        };
        cmd.env(
            "PGCONNECT_TIMEOUT",
            self.connect_timeout().as_secs().max(1).to_string(),
        );
        cmd.env("PGAPPNAME", "drkit");
        cmd.env_remove("PGSSLROOTCERT");
        for (k, v) in self.tls.libpq_env() {
            cmd.env(k, v);
        }
    }
}

async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(e) = connection.await {
        tracing::debug!("postgres connection closed: {e}");
    }
}

/// Hides a password in a DSN that did not parse, for error messages: the userinfo
/// password of a URL (parsed by hand, since the URL may be malformed) and any
/// `password=` pair.
fn redact_text(dsn: &str) -> String {
    let mut text = dsn.to_owned();
    if let Some(scheme_end) = text.find("://") {
        let rest = &text[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                let (from, to) = (scheme_end + 3 + colon + 1, scheme_end + 3 + at);
                text.replace_range(from..to, "***");
            }
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find("password=") {
        out.push_str(&rest[..i + "password=".len()]);
        out.push_str("***");
        rest = &rest[i + "password=".len()..];
        let end = rest.find([' ', '&']).unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Quotes an identifier for SQL.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let c = ConnInfo::parse("postgres://app:s3cret@db.example:6432/shop").unwrap();
        assert_eq!(c.redacted(), "postgres://app@db.example:6432/shop");
        assert!(!format!("{c:?} {c}").contains("s3cret"));
        let e = ConnInfo::parse("postgres://app:s3cret@db:notaport/x").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert_eq!(
            redact_text("host=x password=hunter2 port=1"),
            "host=x password=*** port=1"
        );
        assert_eq!(
            redact_text("postgres://u:p@ss@h:bad/db?password=x&a=b"),
            "postgres://u:***@h:bad/db?password=***&a=b"
        );
        assert_eq!(redact_text("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn key_value_strings_parse() {
        let c = ConnInfo::parse("host=127.0.0.1 port=5499 user=postgres dbname=app").unwrap();
        assert_eq!(c.server(), "127.0.0.1:5499");
        assert_eq!(c.with_dbname("other").dbname(), "other");
    }

    #[test]
    fn identifiers_quote() {
        assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
    }
}
