//! The compare-and-swap every JSON-patch write goes through: the patch applies only to
//! the version read (`resourceVersion` replaced by itself is the precondition).

use std::fmt::Debug;

use dr_core::{err, Error, Result};
use kube::api::{Api, Patch, PatchParams};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::error::{classify, is_conflict};
use crate::workload::CAS_ATTEMPTS;
use crate::Kubernetes;

/// The error when every one of [`CAS_ATTEMPTS`] writes of `what` lost a race.
pub(crate) fn lost_races(what: &str) -> Error {
    err!(
        Conflict,
        "{what}: every one of {CAS_ATTEMPTS} writes lost a race with another writer; try again"
    )
}

impl Kubernetes {
    /// `ops` applied to object `name` of `api` as read at `rv`; `Ok(false)` when another
    /// writer changed it first (read it again and retry).
    pub(crate) async fn json_patch_cas<K>(
        &self,
        api: &Api<K>,
        name: &str,
        rv: &str,
        ops: Vec<Value>,
        what: &str,
    ) -> Result<bool>
    where
        K: Clone + DeserializeOwned + Debug,
    {
        let mut all =
            vec![json!({"op": "replace", "path": "/metadata/resourceVersion", "value": rv})];
        all.extend(ops);
        let ops: json_patch::Patch = serde_json::from_value(Value::Array(all))
            .map_err(|e| err!(External, "building a JSON patch of {what}: {e}"))?;
        match api
            .patch(name, &PatchParams::default(), &Patch::<()>::Json(ops))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(classify(self.context(), "patch", what, e)),
        }
    }
}
