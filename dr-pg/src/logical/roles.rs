//! The roles a snapshot's objects need — their owners and the roles granted privileges
//! on them — recorded at backup time, so a restore onto a fresh server (the disaster
//! case) can refuse before touching anything instead of failing half-way through the
//! data load with `role "app_reader" does not exist`.

use std::collections::BTreeSet;

use dr_core::{err, Result};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::connect::{ident, ConnInfo};
use crate::error::query_error;

/// Roles the objects of a database depend on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeededRoles {
    /// Roles that own objects (needed unless restoring with `no_owner`).
    pub owners: Vec<String>,
    /// Roles named in privileges and row-level policies (needed unless `no_privileges`).
    pub grantees: Vec<String>,
}

impl NeededRoles {
    /// Reads them from the catalog of the database `client` is connected to. The
    /// bootstrap superuser is never recorded (Postgres pins it), and every server has one.
    pub(crate) async fn read(client: &Client, conn: &ConnInfo) -> Result<Self> {
        let rows = client
            .query(
                "SELECT DISTINCT r.rolname::text, d.deptype::text FROM pg_shdepend d \
                 JOIN pg_roles r ON r.oid = d.refobjid \
                 WHERE d.refclassid = 'pg_authid'::regclass \
                   AND d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| query_error(conn, "listing the roles the database's objects need", e))?;
        let mut owners = BTreeSet::new();
        let mut grantees = BTreeSet::new();
        for row in rows {
            let (role, kind): (String, String) = (row.get(0), row.get(1));
            if kind == "o" {
                owners.insert(role);
            } else {
                grantees.insert(role);
            }
        }
        Ok(Self {
            owners: owners.into_iter().collect(),
            grantees: grantees.into_iter().collect(),
        })
    }

    /// The roles a restore with these settings needs.
    #[must_use]
    pub fn required(&self, no_owner: bool, no_privileges: bool) -> Vec<String> {
        let mut all = BTreeSet::new();
        if !no_owner {
            all.extend(self.owners.iter().cloned());
        }
        if !no_privileges {
            all.extend(self.grantees.iter().cloned());
        }
        all.into_iter().collect()
    }
}

/// Which of `roles` the server `client` talks to lacks.
pub(crate) async fn missing(
    client: &Client,
    conn: &ConnInfo,
    roles: &[String],
) -> Result<Vec<String>> {
    if roles.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT n FROM unnest($1::text[]) AS n WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = n) ORDER BY 1",
            &[&roles],
        )
        .await
        .map_err(|e| query_error(conn, "checking the roles the snapshot needs", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Creates `roles` as roles that cannot log in (owners and grantees only).
pub(crate) async fn create(client: &Client, conn: &ConnInfo, roles: &[String]) -> Result<()> {
    for role in roles {
        client
            .batch_execute(&format!("CREATE ROLE {} NOLOGIN", ident(role)))
            .await
            .map_err(|e| query_error(conn, &format!("creating role {role:?}"), e))?;
    }
    Ok(())
}

/// The refusal when the server lacks roles and nothing was asked to create them.
pub(crate) fn refuse(snapshot: &str, server: &str, missing: &[String]) -> dr_core::Error {
    err!(
        Conflict,
        "snapshot {snapshot} needs roles that {server} lacks: {}; nothing was changed. Restore them from the snapshot with --globals (Python globals=True, runbook globals: true), create them as NOLOGIN roles with --create-roles (create_roles), create them yourself, or restore with --no-owner --no-privileges",
        missing.join(", ")
    )
}
