//! A self-managed Postgres server as a [`DatabaseTarget`]: its role from
//! `pg_is_in_recovery()`, replication lag from the replay position and timestamp,
//! promotion of a streaming replica (waiting until it really takes writes), and fencing
//! of an old primary that is still reachable (it then refuses writes).
//!
//! ```no_run
//! # async fn run() -> dr_core::Result<()> {
//! use dr_core::target::DatabaseTarget;
//! use dr_core::wait::Wait;
//! let replica = dr_pg::PgTarget::new(dr_pg::ConnInfo::parse("postgres://postgres@db-dr.internal/postgres")?);
//! let h = replica.promote(&Wait::new(std::time::Duration::from_mins(5))).await?;
//! assert!(h.writable);
//! # Ok(()) }
//! ```

use std::time::Duration;

use async_trait::async_trait;
use dr_core::target::{Capability, DatabaseTarget, Health, Lsn, Role};
use dr_core::wait::Wait;
use dr_core::{ErrorKind, Result};
use tokio_postgres::Client;

use crate::connect::ConnInfo;
use crate::error::query_error;

/// One Postgres server, reached by `conn`.
#[derive(Debug, Clone)]
pub struct PgTarget {
    conn: ConnInfo,
}

const HEALTH: &str = "SELECT pg_is_in_recovery(), \
    (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text, \
    CASE WHEN NOT pg_is_in_recovery() THEN NULL \
         WHEN pg_last_wal_receive_lsn() IS NOT NULL AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8 \
         ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END, \
    current_setting('default_transaction_read_only') = 'on', \
    (SELECT sender_host || ':' || sender_port FROM pg_stat_wal_receiver LIMIT 1)";

impl PgTarget {
    /// The server `conn` names (any database on it).
    #[must_use]
    pub fn new(conn: ConnInfo) -> Self {
        Self { conn }
    }

    /// The connection it uses.
    #[must_use]
    pub fn conn(&self) -> &ConnInfo {
        &self.conn
    }

    async fn read(&self, client: &Client) -> Result<Health> {
        let row = client
            .query_one(HEALTH, &[])
            .await
            .map_err(|e| query_error(&self.conn, "reading the server's role and lag", e))?;
        let in_recovery: bool = row.get(0);
        let lsn: Option<String> = row.get(1);
        let lag: Option<f64> = row.get(2);
        let read_only: bool = row.get(3);
        let role = if in_recovery {
            Role::Replica
        } else {
            Role::Primary
        };
        Ok(Health {
            name: self.name(),
            available: true,
            status: match (role, read_only) {
                (Role::Replica, _) => "in recovery".to_owned(),
                (Role::Primary, true) => "primary, fenced (read-only)".to_owned(),
                (Role::Primary, false) => "primary".to_owned(),
            },
            role,
            writable: !in_recovery && !read_only,
            endpoint: Some(self.conn.server()),
            replicating_from: if in_recovery { row.get(4) } else { None },
            replication_lag: lag.and_then(|s| Duration::try_from_secs_f64(s.max(0.0)).ok()),
            position: lsn.as_deref().and_then(|l| Lsn::parse(l).ok()),
        })
    }

    /// Whether a new session can write: a CREATE (rolled back) fails on a standby and
    /// under `default_transaction_read_only`.
    async fn takes_writes(&self) -> Result<bool> {
        let client = self.conn.connect().await?;
        Ok(client
            .batch_execute("BEGIN; CREATE TEMP TABLE drkit_write_probe (x int); ROLLBACK")
            .await
            .is_ok())
    }

    /// Lifts a fence: the server takes writes again.
    pub async fn unfence(&self, wait: &Wait) -> Result<Health> {
        let client = self.conn.connect().await?;
        for sql in [
            "ALTER SYSTEM RESET default_transaction_read_only",
            "SELECT pg_reload_conf()",
        ] {
            client
                .batch_execute(sql)
                .await
                .map_err(|e| self.privileged(e, "lifting the fence"))?;
        }
        wait.until(&format!("unfencing {}", self.name()), || async {
            let h = self.health().await?;
            let state = h.status.clone();
            Ok((
                (h.writable && self.takes_writes().await?).then_some(h),
                state,
            ))
        })
        .await
    }

    fn privileged(&self, e: tokio_postgres::Error, what: &str) -> dr_core::Error {
        let denied = e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE);
        let q = query_error(&self.conn, what, e);
        if denied {
            return dr_core::Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "{}; this needs a superuser (ALTER SYSTEM, pg_promote)",
                    q.message()
                ),
            );
        }
        q
    }
}

#[async_trait]
impl DatabaseTarget for PgTarget {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn name(&self) -> String {
        format!("postgres:{}", self.conn.server())
    }

    fn capabilities(&self) -> Vec<Capability> {
        vec![
            Capability::Health,
            Capability::ReplicationLag,
            Capability::Promote,
            Capability::Fence,
        ]
    }

    /// An unreachable server is reported as unavailable, not as an error.
    async fn health(&self) -> Result<Health> {
        match self.conn.connect().await {
            Ok(client) => self.read(&client).await,
            Err(e) if matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout) => {
                Ok(Health {
                    name: self.name(),
                    available: false,
                    status: format!("unreachable: {}", e.message()),
                    role: Role::Primary,
                    writable: false,
                    endpoint: Some(self.conn.server()),
                    replicating_from: None,
                    replication_lag: None,
                    position: None,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// `pg_promote()`, then waits until the server is out of recovery and a new session
    /// can write. A primary is left alone.
    async fn promote(&self, wait: &Wait) -> Result<Health> {
        let client = self.conn.connect().await?;
        let now = self.read(&client).await?;
        if now.role == Role::Primary {
            tracing::info!("{} is already a primary; nothing to promote", self.name());
            return Ok(now);
        }
        let secs = wait.timeout.as_secs().clamp(1, i32::MAX as u64) as i32;
        let promoted: bool = client
            .query_one("SELECT pg_promote(true, $1)", &[&secs])
            .await
            .map_err(|e| self.privileged(e, "promoting"))?
            .get(0);
        if !promoted {
            tracing::warn!(
                "{}: pg_promote did not finish within {secs} s; still waiting",
                self.name()
            );
        }
        wait.until(&format!("promoting {}", self.name()), || async {
            let h = self.health().await?;
            let state = h.status.clone();
            let done = h.role == Role::Primary && h.writable && self.takes_writes().await?;
            Ok((done.then_some(h), state))
        })
        .await
    }

    /// Sets `default_transaction_read_only` for the whole server (ALTER SYSTEM and a
    /// reload), ends the other client sessions so none keeps writing, and waits until a
    /// new session cannot write. A replica is already read-only: nothing to do.
    async fn fence(&self, wait: &Wait) -> Result<Health> {
        let client = self.conn.connect().await.map_err(|e| {
            e.context(format!(
                "fencing {}: the old primary must be reachable to fence it",
                self.name()
            ))
        })?;
        let now = self.read(&client).await?;
        if !now.writable {
            return Ok(now);
        }
        // One statement each: ALTER SYSTEM refuses to run in a transaction block, which
        // several statements in one simple query are.
        for sql in [
            "ALTER SYSTEM SET default_transaction_read_only = on",
            "SELECT pg_reload_conf()",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
        ] {
            client
                .batch_execute(sql)
                .await
                .map_err(|e| self.privileged(e, "fencing"))?;
        }
        wait.until(&format!("fencing {}", self.name()), || async {
            let h = self.health().await?;
            let state = h.status.clone();
            let fenced = !h.writable && !self.takes_writes().await?;
            Ok((fenced.then_some(h), state))
        })
        .await
    }
}

impl From<ConnInfo> for PgTarget {
    fn from(conn: ConnInfo) -> Self {
        Self::new(conn)
    }
}
