//! `drkit.Kubernetes`: the dr-k8s operations, with the options the CLI and runbooks take;
//! results are documents with the previous values.

use std::collections::BTreeMap;
use std::time::Duration;

use dr_k8s::{
    ConfigMapOptions, ConnectOptions, EnvOptions, Kubernetes as Client, ScaleOptions, Workload,
};
use pyo3::prelude::*;

use crate::repository::to_python;
use crate::runtime::block_on;

fn py_err(e: dr_core::Error) -> PyErr {
    crate::errors::to_py(e)
}

fn workload(s: &str) -> PyResult<Workload> {
    s.parse().map_err(py_err)
}

fn seconds(t: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(t).map_err(|e| py_err(dr_core::err!(InvalidInput, "timeout: {e}")))
}

/// One Kubernetes cluster: a kubeconfig context, or the pod's service account.
#[pyclass(module = "drkit._native", frozen)]
pub struct Kubernetes {
    inner: Client,
}

#[pymethods]
impl Kubernetes {
    /// Connects to `context` of `kubeconfig` (default: KUBECONFIG, ~/.kube/config, its
    /// current context), or in-cluster.
    #[new]
    #[pyo3(signature = (*, context=None, kubeconfig=None, namespace=None, in_cluster=false))]
    fn new(
        py: Python<'_>,
        context: Option<String>,
        kubeconfig: Option<std::path::PathBuf>,
        namespace: Option<String>,
        in_cluster: bool,
    ) -> PyResult<Self> {
        let options = ConnectOptions {
            kubeconfig,
            context,
            namespace,
            in_cluster,
        };
        Ok(Self {
            inner: block_on(py, Client::connect(&options))?,
        })
    }

    /// The context's name.
    #[getter]
    fn context(&self) -> String {
        self.inner.context().to_owned()
    }

    /// Scales `workload` (`deployment/api`) to `replicas`; the result has `previous`.
    /// With `dry_run`, returns the change without making it.
    #[pyo3(signature = (workload, replicas, *, namespace=None, wait=false, timeout=300.0, dry_run=false))]
    #[allow(clippy::too_many_arguments)] // mirrors the Python keyword arguments one to one
    fn scale<'py>(
        &self,
        py: Python<'py>,
        workload: &str,
        replicas: i32,
        namespace: Option<String>,
        wait: bool,
        timeout: f64,
        dry_run: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let o = ScaleOptions {
            workload: self::workload(workload)?,
            replicas,
            namespace,
            wait,
            timeout: seconds(timeout)?,
        };
        if dry_run {
            return to_python(py, &block_on(py, self.inner.plan_scale(&o))?);
        }
        to_python(py, &block_on(py, self.inner.scale(&o))?)
    }

    /// Waits until `workload`'s rollout is done.
    #[pyo3(signature = (workload, *, namespace=None, timeout=300.0))]
    fn wait_ready<'py>(
        &self,
        py: Python<'py>,
        workload: &str,
        namespace: Option<&str>,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let w = self::workload(workload)?;
        to_python(
            py,
            &block_on(py, self.inner.wait_ready(&w, namespace, seconds(timeout)?))?,
        )
    }

    /// Rolls `workload` back to the previous revision, or `to_revision`.
    #[pyo3(signature = (workload, *, to_revision=None, namespace=None, dry_run=false))]
    fn rollout_undo<'py>(
        &self,
        py: Python<'py>,
        workload: &str,
        to_revision: Option<i64>,
        namespace: Option<&str>,
        dry_run: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let w = self::workload(workload)?;
        if dry_run {
            return to_python(
                py,
                &block_on(py, self.inner.plan_rollout_undo(&w, namespace, to_revision))?,
            );
        }
        to_python(
            py,
            &block_on(py, self.inner.rollout_undo(&w, namespace, to_revision))?,
        )
    }

    /// New pods for `workload` (the restartedAt annotation).
    #[pyo3(signature = (workload, *, namespace=None))]
    fn rollout_restart<'py>(
        &self,
        py: Python<'py>,
        workload: &str,
        namespace: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let w = self::workload(workload)?;
        to_python(
            py,
            &block_on(py, self.inner.rollout_restart(&w, namespace))?,
        )
    }

    /// Sets environment variables (`None` removes one) of `container` (else every
    /// container) of `workload`; the result has the old values.
    #[pyo3(signature = (workload, env, *, container=None, namespace=None, dry_run=false))]
    fn set_env<'py>(
        &self,
        py: Python<'py>,
        workload: &str,
        env: BTreeMap<String, Option<String>>,
        container: Option<String>,
        namespace: Option<String>,
        dry_run: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let o = EnvOptions {
            namespace,
            container,
            ..EnvOptions::new(self::workload(workload)?, env)
        };
        if dry_run {
            return to_python(py, &block_on(py, self.inner.plan_set_env(&o))?);
        }
        to_python(py, &block_on(py, self.inner.set_env(&o))?)
    }

    /// Sets `set` and removes `remove` keys of ConfigMap `name`; the result has the old
    /// values.
    #[pyo3(signature = (name, *, set=None, remove=None, namespace=None, dry_run=false))]
    fn configmap_set<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        set: Option<BTreeMap<String, String>>,
        remove: Option<Vec<String>>,
        namespace: Option<String>,
        dry_run: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let o = ConfigMapOptions {
            name: name.to_owned(),
            namespace,
            set: set.unwrap_or_default(),
            remove: remove.unwrap_or_default(),
        };
        if dry_run {
            return to_python(py, &block_on(py, self.inner.plan_configmap(&o))?);
        }
        to_python(py, &block_on(py, self.inner.configmap_set(&o))?)
    }

    /// Points every backend of `ingress` at the maintenance Service (`on=True`), or
    /// puts it back exactly (`on=False`).
    #[pyo3(signature = (ingress, on, *, service="drkit-maintenance", port=80, image=None, namespace=None, dry_run=false))]
    #[allow(clippy::too_many_arguments)] // mirrors the Python keyword arguments one to one
    fn maintenance<'py>(
        &self,
        py: Python<'py>,
        ingress: &str,
        on: bool,
        service: &str,
        port: i32,
        image: Option<String>,
        namespace: Option<String>,
        dry_run: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let o = dr_k8s::MaintenanceOptions {
            ingress: ingress.to_owned(),
            namespace,
            service: service.to_owned(),
            port,
            image,
        };
        if dry_run {
            return to_python(py, &block_on(py, self.inner.plan_maintenance(&o, on))?);
        }
        if on {
            to_python(py, &block_on(py, self.inner.maintenance_on(&o))?)
        } else {
            to_python(py, &block_on(py, self.inner.maintenance_off(&o))?)
        }
    }

    /// Sets keys of Secret `name` (`set`), or rotates `rotate` keys to fresh random
    /// values, then restarts its users; the result names keys, never values.
    #[pyo3(signature = (name, *, set=None, rotate=None, create=false, restart=true, namespace=None, dry_run=false))]
    #[allow(clippy::too_many_arguments)] // mirrors the Python keyword arguments one to one
    fn secret_set<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        set: Option<BTreeMap<String, String>>,
        rotate: Option<Vec<String>>,
        create: bool,
        restart: bool,
        namespace: Option<String>,
        dry_run: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let o = dr_k8s::SecretOptions {
            name: name.to_owned(),
            namespace,
            set: set.unwrap_or_default(),
            rotate: rotate.unwrap_or_default(),
            create,
            restart,
            ..serde_json::from_value(serde_json::json!({"name": name}))
                .map_err(|e| py_err(dr_core::err!(InvalidInput, "{e}")))?
        };
        if dry_run {
            return to_python(py, &block_on(py, self.inner.plan_secret(&o))?);
        }
        to_python(py, &block_on(py, self.inner.secret_set(&o))?)
    }

    /// Exports namespace `namespace` — or several, `namespaces`, with the cluster-wide
    /// objects they need when `cluster` — into `repo` as a snapshot.
    #[pyo3(signature = (repo, *, namespace=None, namespaces=None, cluster=false, kinds=None, selector=None))]
    #[allow(clippy::too_many_arguments)] // mirrors the Python keyword arguments one to one
    fn export<'py>(
        &self,
        py: Python<'py>,
        repo: &crate::repository::Repository,
        namespace: Option<String>,
        namespaces: Option<Vec<String>>,
        cluster: bool,
        kinds: Option<Vec<String>>,
        selector: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let o = dr_k8s::ExportOptions {
            namespace,
            namespaces: namespaces.unwrap_or_default(),
            cluster,
            kinds: kinds.unwrap_or_default(),
            selector,
            tags: BTreeMap::new(),
        };
        to_python(py, &block_on(py, self.inner.export(&repo.inner, &o))?)
    }

    /// Applies manifest `files` (files or folders, as `kubectl apply -f`) or a namespace
    /// snapshot of `repo` (latest by default): all of it, or the objects `kinds` and
    /// `selector` pick; the same document as `drkit k8s apply --json`.
    #[pyo3(signature = (repo=None, *, snapshot=None, source=None, files=None, namespace=None, kinds=None, selector=None, namespace_map=None, dry_run=false, wait=false, timeout=600.0))]
    #[allow(clippy::too_many_arguments)] // mirrors the Python keyword arguments one to one
    fn apply<'py>(
        &self,
        py: Python<'py>,
        repo: Option<&crate::repository::Repository>,
        snapshot: Option<&str>,
        source: Option<String>,
        files: Option<Vec<std::path::PathBuf>>,
        namespace: Option<String>,
        kinds: Option<Vec<String>>,
        selector: Option<String>,
        namespace_map: Option<BTreeMap<String, String>>,
        dry_run: bool,
        wait: bool,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let o = dr_k8s::ApplyOptions {
            snapshot: snapshot.map(dr_core::repo::SnapshotRef::from),
            source,
            files,
            namespace,
            kinds: kinds.unwrap_or_default(),
            selector,
            namespace_map: namespace_map.unwrap_or_default(),
            dry_run,
            wait,
            timeout: Some(seconds(timeout)?),
        };
        let repo = repo.map(|r| &r.inner);
        to_python(py, &block_on(py, self.inner.apply(repo, &o))?)
    }

    /// Puts back what the last change of Secret `name` replaced, then restarts its users.
    #[pyo3(signature = (name, *, namespace=None))]
    fn secret_restore<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        namespace: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        to_python(
            py,
            &block_on(py, self.inner.secret_restore(name, namespace))?,
        )
    }

    /// Creates namespace `name` with `labels` (an existing one is left as it is).
    #[pyo3(signature = (name, *, labels=None))]
    fn namespace_create<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        labels: Option<BTreeMap<String, String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let labels = labels.unwrap_or_default();
        to_python(
            py,
            &block_on(py, self.inner.namespace_create(name, &labels))?,
        )
    }

    /// Deletes namespace `name` and waits until it is gone with its content.
    #[pyo3(signature = (name, *, timeout=300.0))]
    fn namespace_delete<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        to_python(
            py,
            &block_on(py, self.inner.namespace_delete(name, seconds(timeout)?))?,
        )
    }

    /// Waits until every Deployment of the namespace is available; their names.
    #[pyo3(signature = (*, namespace=None, timeout=300.0))]
    fn wait_available<'py>(
        &self,
        py: Python<'py>,
        namespace: Option<&str>,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        to_python(
            py,
            &block_on(py, self.inner.wait_available(namespace, seconds(timeout)?))?,
        )
    }

    /// Deletes pod `name` and waits until its controller replaced it with a ready one.
    #[pyo3(signature = (name, *, namespace=None, timeout=300.0))]
    fn pod_delete<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        namespace: Option<&str>,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        to_python(
            py,
            &block_on(
                py,
                self.inner.pod_delete(name, namespace, seconds(timeout)?),
            )?,
        )
    }

    /// The last `tail` lines of each container of pod `name`.
    #[pyo3(signature = (name, *, namespace=None, tail=50))]
    fn logs<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        namespace: Option<&str>,
        tail: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &block_on(py, self.inner.logs(name, namespace, tail))?)
    }
}
