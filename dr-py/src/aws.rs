//! `drkit.Rds` and `drkit.Route53`: the AWS control-plane actions of a runbook.

use std::collections::BTreeMap;
use std::time::Duration;

use dr_aws::{
    AwsConfig, AwsOverrides, HealthCheckSpec, PitrRequest, Rds as RdsClient, ReplicaRequest,
    Route53 as R53Client, Route53Router,
};
use dr_core::target::PointInTime;
use dr_core::traffic::{Destination, Route, TrafficRouter};
use dr_core::wait::Wait;
use dr_core::{err, Result};
use pyo3::prelude::*;

use crate::repository::to_python;
use crate::runtime::block_on;

fn config(
    region: Option<String>,
    endpoint: Option<String>,
    profile: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
) -> Result<AwsConfig> {
    AwsConfig::resolve(&AwsOverrides {
        region,
        endpoint,
        profile,
    })?
    .with_key_pair(access_key_id, secret_access_key)
}

fn wait(timeout: f64) -> Result<Wait> {
    let t = Duration::try_from_secs_f64(timeout).map_err(|e| err!(InvalidInput, "timeout: {e}"))?;
    Ok(Wait::new(t))
}

fn py_err(e: dr_core::Error) -> PyErr {
    crate::errors::to_py(e)
}

/// Amazon RDS in one region.
#[pyclass(module = "drkit._native", frozen)]
pub struct Rds {
    inner: RdsClient,
}

#[pymethods]
impl Rds {
    /// Connects with the standard AWS chain, or the given region/endpoint/credentials.
    #[new]
    #[pyo3(signature = (*, region=None, endpoint=None, profile=None, access_key_id=None, secret_access_key=None))]
    fn new(
        py: Python<'_>,
        region: Option<String>,
        endpoint: Option<String>,
        profile: Option<String>,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
    ) -> PyResult<Self> {
        let c =
            config(region, endpoint, profile, access_key_id, secret_access_key).map_err(py_err)?;
        Ok(Self {
            inner: block_on(py, RdsClient::connect(&c))?,
        })
    }

    /// Status, endpoint, replication source and latest restorable time of instance `id`.
    fn describe<'py>(&self, py: Python<'py>, id: &str) -> PyResult<Bound<'py, PyAny>> {
        let db = block_on(py, self.inner.describe(id))?;
        to_python(py, &db)
    }

    /// Promotes read replica `id` and waits until it is an available primary.
    #[pyo3(signature = (id, *, timeout=1800.0))]
    fn promote<'py>(&self, py: Python<'py>, id: &str, timeout: f64) -> PyResult<Bound<'py, PyAny>> {
        let w = wait(timeout).map_err(py_err)?;
        let db = block_on(py, self.inner.promote(id, &w))?;
        to_python(py, &db)
    }

    /// Creates read replica `id` of `source` (an ARN across regions) and waits for it.
    /// Called again with the same `token` (a run id), it adopts the replica the first
    /// call created.
    #[pyo3(signature = (source, id, *, instance_class=None, token=None, timeout=1800.0))]
    fn create_read_replica<'py>(
        &self,
        py: Python<'py>,
        source: &str,
        id: &str,
        instance_class: Option<String>,
        token: Option<String>,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let w = wait(timeout).map_err(py_err)?;
        let request = ReplicaRequest {
            source: source.to_owned(),
            id: id.to_owned(),
            instance_class,
            token,
        };
        let db = block_on(py, self.inner.create_read_replica(&request, &w))?;
        to_python(py, &db)
    }

    /// Restores `source` into new instance `to` at `time` (RFC 3339) or the latest
    /// restorable time, and waits for it; with the same `token` again, adopts the
    /// instance the first call created.
    #[pyo3(signature = (source, to, *, time=None, token=None, timeout=1800.0))]
    fn restore_to_point_in_time<'py>(
        &self,
        py: Python<'py>,
        source: &str,
        to: &str,
        time: Option<String>,
        token: Option<String>,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let target = match time {
            None => PointInTime::Latest,
            Some(t) => PointInTime::Time(t.parse().map_err(|e| {
                py_err(err!(
                    InvalidInput,
                    "time {t:?} is not RFC 3339 (2026-12-01T03:15:00Z): {e}"
                ))
            })?),
        };
        let w = wait(timeout).map_err(py_err)?;
        let request = PitrRequest {
            source: source.to_owned(),
            new_id: to.to_owned(),
            target,
            token,
        };
        let db = block_on(py, self.inner.restore_to_point_in_time(&request, &w))?;
        to_python(py, &db)
    }

    /// Takes snapshot `name` of instance `id` and waits for it.
    #[pyo3(signature = (id, name, *, timeout=1800.0))]
    fn create_snapshot<'py>(
        &self,
        py: Python<'py>,
        id: &str,
        name: &str,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let w = wait(timeout).map_err(py_err)?;
        let s = block_on(py, self.inner.create_snapshot(id, name, &w))?;
        to_python(py, &s)
    }

    /// Snapshots of instance `id`, or all, oldest first.
    #[pyo3(signature = (id=None))]
    fn snapshots<'py>(&self, py: Python<'py>, id: Option<&str>) -> PyResult<Bound<'py, PyAny>> {
        let all = block_on(py, self.inner.snapshots(id))?;
        to_python(py, &all)
    }

    /// Copies snapshot `source` (an ARN across regions) into this region as `to`.
    #[pyo3(signature = (source, to, *, timeout=1800.0))]
    fn copy_snapshot<'py>(
        &self,
        py: Python<'py>,
        source: &str,
        to: &str,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let w = wait(timeout).map_err(py_err)?;
        let s = block_on(py, self.inner.copy_snapshot(source, to, &w))?;
        to_python(py, &s)
    }

    /// Restores snapshot `snapshot` into new instance `to` and waits for it.
    #[pyo3(signature = (snapshot, to, *, timeout=1800.0))]
    fn restore_snapshot<'py>(
        &self,
        py: Python<'py>,
        snapshot: &str,
        to: &str,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let w = wait(timeout).map_err(py_err)?;
        let db = block_on(py, self.inner.restore_snapshot(snapshot, to, &w))?;
        to_python(py, &db)
    }
}

/// Amazon Route 53.
#[pyclass(module = "drkit._native", frozen)]
pub struct Route53 {
    inner: R53Client,
}

impl Route53 {
    fn switch<'py>(
        &self,
        py: Python<'py>,
        zone: &str,
        name: &str,
        record_type: &str,
        to: Destination,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let w = wait(timeout).map_err(py_err)?;
        let r53 = self.inner.clone();
        let switched = block_on(py, async move {
            Route53Router::new(r53, zone, name, record_type)
                .await?
                .switch(&to, &w)
                .await
        })?;
        to_python(py, &switched)
    }
}

#[pymethods]
impl Route53 {
    /// Connects with the standard AWS chain, or the given endpoint/credentials.
    #[new]
    #[pyo3(signature = (*, endpoint=None, profile=None, access_key_id=None, secret_access_key=None))]
    fn new(
        py: Python<'_>,
        endpoint: Option<String>,
        profile: Option<String>,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
    ) -> PyResult<Self> {
        let c =
            config(None, endpoint, profile, access_key_id, secret_access_key).map_err(py_err)?;
        Ok(Self {
            inner: block_on(py, R53Client::connect(&c))?,
        })
    }

    /// The records of `name` (`type`) in hosted zone `zone` (name or id).
    #[pyo3(signature = (zone, name, *, r#type="CNAME"))]
    fn route<'py>(
        &self,
        py: Python<'py>,
        zone: &str,
        name: &str,
        r#type: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let r53 = self.inner.clone();
        let route = block_on(py, async move {
            Route53Router::new(r53, zone, name, r#type)
                .await?
                .current()
                .await
        })?;
        to_python(py, &route)
    }

    /// Stores every record set of `zone` (name or id) in `repo` as a snapshot of kind
    /// `dns`, as `drkit dns export` does; returns its summary.
    fn export_zone<'py>(
        &self,
        py: Python<'py>,
        repo: &crate::repository::Repository,
        zone: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = dr_aws::zone::ExportOptions {
            zone: zone.to_owned(),
            tags: BTreeMap::new(),
        };
        let snap = block_on(
            py,
            dr_aws::zone::export_zone(&repo.inner, &self.inner, &options),
        )?;
        to_python(py, &snap.summary())
    }

    /// Restores a `dns` snapshot (id, prefix or "latest") into its zone or `zone`:
    /// creates and changes (and with `delete`, deletes) in batches, waits until INSYNC,
    /// reads back; with `dry_run` only the plan. The same document as
    /// `drkit dns import --json`.
    #[pyo3(signature = (repo, snapshot, *, zone=None, delete=false, dry_run=false, source=None, timeout=600.0))]
    #[allow(clippy::too_many_arguments)] // mirrors the Python keyword arguments one to one
    fn import_zone<'py>(
        &self,
        py: Python<'py>,
        repo: &crate::repository::Repository,
        snapshot: &str,
        zone: Option<String>,
        delete: bool,
        dry_run: bool,
        source: Option<String>,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let w = wait(timeout).map_err(py_err)?;
        let pick = dr_core::repo::Pick {
            snapshot: snapshot.into(),
            source,
            ..dr_core::repo::Pick::default()
        };
        let options = dr_aws::zone::ImportOptions {
            zone,
            delete,
            dry_run,
        };
        let (r, r53) = (&repo.inner, &self.inner);
        let plan = block_on(py, async move {
            let snap = r.pick(&pick, dr_aws::zone::KIND_DNS, None).await?;
            dr_aws::zone::import_zone(r, r53, &snap, &options, &w).await
        })?;
        to_python(py, &plan)
    }

    /// Sends all traffic to set `to` (PRIMARY of a failover pair, or all the weight);
    /// waits until live and reads back. Returns `{"before", "after", "took"}`.
    #[pyo3(signature = (zone, name, to, *, r#type="CNAME", timeout=600.0))]
    fn failover<'py>(
        &self,
        py: Python<'py>,
        zone: &str,
        name: &str,
        to: &str,
        r#type: &str,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.switch(
            py,
            zone,
            name,
            r#type,
            Destination::Set(to.to_owned()),
            timeout,
        )
    }

    /// Sets the weights of a weighted set, by set id.
    #[pyo3(signature = (zone, name, weights, *, r#type="CNAME", timeout=600.0))]
    fn set_weights<'py>(
        &self,
        py: Python<'py>,
        zone: &str,
        name: &str,
        weights: BTreeMap<String, i64>,
        r#type: &str,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.switch(
            py,
            zone,
            name,
            r#type,
            Destination::Weights(weights),
            timeout,
        )
    }

    /// Points a simple record at `values`, creating it if missing.
    #[pyo3(signature = (zone, name, values, *, r#type="CNAME", timeout=600.0))]
    fn set_values<'py>(
        &self,
        py: Python<'py>,
        zone: &str,
        name: &str,
        values: Vec<String>,
        r#type: &str,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.switch(py, zone, name, r#type, Destination::Values(values), timeout)
    }

    /// Puts back `previous` (the `before` of a switch).
    #[pyo3(signature = (zone, previous, *, timeout=600.0))]
    fn restore<'py>(
        &self,
        py: Python<'py>,
        zone: &str,
        previous: &Bound<'py, PyAny>,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let json: String = py
            .import("json")?
            .call_method1("dumps", (previous,))?
            .extract()?;
        let route: Route = serde_json::from_str(&json).map_err(|e| {
            py_err(err!(
                InvalidInput,
                "previous is not a route as a switch returned it: {e}"
            ))
        })?;
        let w = wait(timeout).map_err(py_err)?;
        let r53 = self.inner.clone();
        let switched = block_on(py, async move {
            Route53Router::new(r53, zone, &route.name, &route.record_type)
                .await?
                .restore(&route, &w)
                .await
        })?;
        to_python(py, &switched)
    }

    /// Creates a health check; returns its id. Fields left out take Route 53's usual
    /// values (HTTPS, port 443, every 30 s, unhealthy after 3 failures).
    #[pyo3(signature = (*, kind=None, fqdn=None, ip=None, port=None, path=None, interval=None, failure_threshold=None))]
    #[allow(clippy::too_many_arguments)] // mirrors the Python keyword arguments one to one
    fn create_health_check(
        &self,
        py: Python<'_>,
        kind: Option<String>,
        fqdn: Option<String>,
        ip: Option<String>,
        port: Option<u16>,
        path: Option<String>,
        interval: Option<u16>,
        failure_threshold: Option<u16>,
    ) -> PyResult<String> {
        let d = HealthCheckSpec::default();
        let spec = HealthCheckSpec {
            kind: kind.unwrap_or(d.kind),
            fqdn,
            ip,
            port: port.unwrap_or(d.port),
            path,
            interval: interval.unwrap_or(d.interval),
            failure_threshold: failure_threshold.unwrap_or(d.failure_threshold),
        };
        block_on(py, self.inner.create_health_check(&spec))
    }

    /// Reads health check `id`.
    fn health_check<'py>(&self, py: Python<'py>, id: &str) -> PyResult<Bound<'py, PyAny>> {
        let hc = block_on(py, self.inner.health_check(id))?;
        to_python(py, &hc)
    }
}

/// Compares every object of the bucket prefix `source` with `replica` (streamed, merged
/// in key order): missing, differing and extra objects and how far behind the replica
/// is; the same document as `drkit s3 verify-replica --json` (`in_sync`).
#[pyfunction]
#[pyo3(signature = (source, replica, *, list=20))]
pub fn s3_verify_replica(
    py: Python<'_>,
    source: String,
    replica: String,
    list: usize,
) -> PyResult<Bound<'_, PyAny>> {
    let options = dr_aws::s3::VerifyReplicaOptions {
        source,
        replica,
        list,
    };
    crate::repository::to_python(
        py,
        &crate::runtime::block_on(py, dr_aws::s3::verify_replica(&options))?,
    )
}

/// Reads back a bucket's versioning, replication and lifecycle and checks them; the same
/// document as `drkit s3 check-bucket --json` (`ok`, `problems`).
#[pyfunction]
#[pyo3(signature = (bucket, *, versioning=true, replicates_to=None, lifecycle=false))]
pub fn s3_check_bucket(
    py: Python<'_>,
    bucket: String,
    versioning: bool,
    replicates_to: Option<String>,
    lifecycle: bool,
) -> PyResult<Bound<'_, PyAny>> {
    let options = dr_aws::s3::CheckBucketOptions {
        bucket,
        versioning,
        replicates_to,
        lifecycle,
    };
    crate::repository::to_python(
        py,
        &crate::runtime::block_on(py, dr_aws::s3::check_bucket(&options))?,
    )
}

/// Copies a folder or bucket prefix to a bucket prefix, only what is missing or differs;
/// the same document as `drkit s3 sync --json`.
#[pyfunction]
#[pyo3(signature = (source, destination, *, delete=false, dry_run=false, parallel=8))]
pub fn s3_sync(
    py: Python<'_>,
    source: String,
    destination: String,
    delete: bool,
    dry_run: bool,
    parallel: usize,
) -> PyResult<Bound<'_, PyAny>> {
    let options = dr_aws::s3::SyncOptions {
        source,
        destination,
        delete,
        dry_run,
        parallel,
        list: 20,
    };
    crate::repository::to_python(
        py,
        &crate::runtime::block_on(py, dr_aws::s3::sync(&options))?,
    )
}

/// Reads a secret's value, or one key of a JSON secret, from AWS Secrets Manager, as a
/// runbook's `secretsmanager.get` step does: `value`, `name`, `arn`, `version_id`,
/// `stages`, `created`. An error names the secret and the keys there are, never a value.
#[pyfunction]
#[pyo3(signature = (secret, *, key=None, stage=None, version_id=None, region=None, endpoint=None, profile=None, access_key_id=None, secret_access_key=None))]
#[allow(clippy::too_many_arguments)] // keyword arguments, as the step's `with:`
pub fn secretsmanager_get(
    py: Python<'_>,
    secret: String,
    key: Option<String>,
    stage: Option<String>,
    version_id: Option<String>,
    region: Option<String>,
    endpoint: Option<String>,
    profile: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
) -> PyResult<Bound<'_, PyAny>> {
    let options = dr_aws::secrets::GetSecretOptions {
        secret,
        key,
        stage,
        version_id,
    };
    let aws =
        config(region, endpoint, profile, access_key_id, secret_access_key).map_err(py_err)?;
    let read = block_on(py, async move {
        dr_aws::secrets::SecretsManager::connect(&aws)
            .await?
            .get(&options)
            .await
    })?;
    to_python(py, &read)
}
