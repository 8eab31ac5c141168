//! Postgres failures, turned into drkit errors that name the server and the fix.

use dr_core::{Error, ErrorKind};

use crate::connect::ConnInfo;

/// What went wrong talking to a server, before it becomes a [`dr_core::Error`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum PgError {
    #[error("cannot connect to Postgres at {target}: {cause}; check that the server is running and the host and port are right")]
    Unreachable { target: String, cause: String },
    #[error("Postgres at {target} refused the login of user {user:?}: {cause}; check the user and password (in the URL or PGPASSWORD)")]
    Auth {
        target: String,
        user: String,
        cause: String,
    },
    #[error("database {database:?} does not exist on {server}; check its name (a restore creates it when it is missing)")]
    NoDatabase { server: String, database: String },
    #[error("connecting to Postgres at {target} timed out after {secs} s; check the host, firewall and connect_timeout")]
    Timeout { target: String, secs: u64 },
    #[error("Postgres at {target} accepts only TLS connections ({cause}); add sslmode=require to the URL, or sslmode=verify-full&sslrootcert=<CA file> to also check who answers")]
    TlsRequired { target: String, cause: String },
    #[error("Postgres at {target} does not offer TLS, which sslmode={mode} asks for; turn ssl on in the server's postgresql.conf, or connect with sslmode=prefer")]
    TlsUnavailable { target: String, mode: String },
    #[error("the TLS certificate of Postgres at {target} was not accepted: {cause}; {advice}")]
    Untrusted {
        target: String,
        cause: String,
        advice: &'static str,
    },
    #[error("{what} on {target} failed: {cause}")]
    Query {
        what: String,
        target: String,
        cause: String,
    },
}

impl From<PgError> for Error {
    fn from(e: PgError) -> Self {
        let kind = match &e {
            PgError::Unreachable { .. } => ErrorKind::Unavailable,
            PgError::Auth { .. } | PgError::Untrusted { .. } => ErrorKind::PermissionDenied,
            PgError::NoDatabase { .. } => ErrorKind::NotFound,
            PgError::Timeout { .. } => ErrorKind::Timeout,
            PgError::Query { .. } => ErrorKind::External,
            PgError::TlsRequired { .. } | PgError::TlsUnavailable { .. } => ErrorKind::InvalidInput,
        };
        Error::new(kind, e.to_string())
    }
}

/// Classifies a connection error by SQLSTATE and cause.
pub(crate) fn connect_error(conn: &ConnInfo, e: tokio_postgres::Error) -> Error {
    use tokio_postgres::error::SqlState;
    let target = conn.redacted();
    let cause = db_message(&e);
    let pg = match e.code() {
        _ if cause.contains("no encryption") => PgError::TlsRequired { target, cause },
        _ if cause.contains("does not support TLS") => PgError::TlsUnavailable {
            target,
            mode: conn.tls().mode.to_string(),
        },
        _ if cause.contains("certificate") => PgError::Untrusted {
            advice: if cause.contains("not valid for name") {
                "connect by a host name the certificate lists, or use sslmode=verify-ca to check the CA only"
            } else {
                "pass the CA that signed it as sslrootcert (for Amazon RDS, its global-bundle.pem)"
            },
            target,
            cause,
        },
        Some(c)
            if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            PgError::Auth {
                target,
                user: conn.user().to_owned(),
                cause,
            }
        }
        Some(c) if *c == SqlState::INVALID_CATALOG_NAME => PgError::NoDatabase {
            server: conn.server(),
            database: conn.dbname().to_owned(),
        },
        _ if cause.contains("password") => PgError::Auth {
            target,
            user: conn.user().to_owned(),
            cause,
        },
        _ if cause.contains("timed out") || cause.contains("timeout") => PgError::Timeout {
            target,
            secs: conn.connect_timeout().as_secs(),
        },
        _ => PgError::Unreachable { target, cause },
    };
    with_cause(Error::from(pg), e)
}

/// A failed query, naming what it was for.
pub(crate) fn query_error(conn: &ConnInfo, what: &str, e: tokio_postgres::Error) -> Error {
    let pg = PgError::Query {
        what: what.to_owned(),
        target: conn.redacted(),
        cause: db_message(&e),
    };
    with_cause(Error::from(pg), e)
}

/// Keeps `e` as the cause, except a server's error report: its text is the message
/// already, and it has no cause of its own to walk.
fn with_cause(err: Error, e: tokio_postgres::Error) -> Error {
    if e.as_db_error().is_some() {
        err
    } else {
        err.with_source(e)
    }
}

/// The server's own message where there is one, else the client's with its causes.
pub(crate) fn db_message(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_owned();
    }
    dr_core::error::chain(e)
}
