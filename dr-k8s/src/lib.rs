//! drkit's Kubernetes adapter: what the seed plans do by hand with `kubectl` — scale and
//! wait, ConfigMap changes, a Lease lock for stores that do not enforce create-only
//! writes — as library operations that record what they replaced, so a plan shows the
//! change and a compensation undoes it.
//!
//! Every update is a compare-and-swap on `resourceVersion`: a write that lost a race is
//! tried again on fresh state, never blindly overwritten. Every mutating operation has a
//! plan form that reads live state and returns the change without writing.
//!
//! This crate enables no `k8s-openapi` version feature: the binary that links it picks
//! one (drkit's own pick `v1_33`).

mod apply;
mod cas;
mod cluster;
mod configmap;
pub mod drill;
mod error;
mod lease;
mod maintenance;
pub mod manifests;
mod namespace;
pub mod render;
mod rollout;
pub mod runbook;
mod secret;
mod snapshot;
mod workload;

pub use cluster::{ConnectOptions, Kubernetes};
pub use configmap::{ConfigMapChange, ConfigMapOptions};
pub use lease::LeaseLock;
pub use maintenance::{
    MaintenanceOptions, MaintenanceOutcome, MaintenanceRouter, ORIGINAL as MAINTENANCE_ANNOTATION,
};
pub use namespace::{NamespaceOutcome, PodLogs, PodReplaced};
pub use rollout::{EnvChange, EnvOptions, RestartOutcome, Revision, RolloutHistory, UndoOutcome};
pub use secret::{SecretChange, SecretOptions, PREVIOUS_SUFFIX};
pub use snapshot::{
    Applied, ApplyOptions, ApplyOutcome, ExportOptions, ExportOutcome, ObjectRef, KIND_K8S,
};
pub use workload::{ScaleOptions, ScaleOutcome, WaitOutcome, Workload, WorkloadKind};

/// What a planned change would do to one object: `from` → `to`.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Change {
    /// `deployment default/api in context dr`.
    pub object: String,
    /// What changes (`replicas`, `data.DB_HOST`).
    pub field: String,
    /// The live value (`None`: absent).
    pub from: Option<String>,
    /// The value after.
    pub to: Option<String>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".to_owned());
        if self.from == self.to {
            write!(
                f,
                "{} {}: {} (no change)",
                self.object,
                self.field,
                show(&self.from)
            )
        } else {
            write!(
                f,
                "{} {}: {} -> {}",
                self.object,
                self.field,
                show(&self.from),
                show(&self.to)
            )
        }
    }
}
