//! Kubernetes adapters for drkit: workload scaling, ConfigMap repointing, ingress
//! maintenance mode, namespace export and Lease locks. This crate is being built.

/// The field manager name drkit uses for server-side apply.
pub const FIELD_MANAGER: &str = "drkit";
