//! `drkit.Runbook` and `drkit.resume`: plan, run and resume runbooks from Python, with
//! actions written in Python (`@drkit.action("myapp.drain")`) beside the built-in ones.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use dr_core::runbook::{
    Action, ActionSpec, Engine, Mode, Outcome, RunOptions, SourceMap, StepContext,
};
use dr_core::{err, Result};
use pyo3::prelude::*;
use serde_json::Value;

use crate::repository::{to_python, Repository};
use crate::runtime::block_on;

/// An action whose body is a Python callable taking the step's parameters (a dict) and
/// returning its outputs (a dict, or None).
struct PyAction {
    name: String,
    idempotent: bool,
    callable: Arc<Py<PyAny>>,
}

#[async_trait]
impl Action for PyAction {
    fn spec(&self) -> ActionSpec {
        ActionSpec {
            name: self.name.clone(),
            summary: "An action written in Python.".into(),
            idempotent: self.idempotent,
            params: Vec::new(),
            outputs: Vec::new(),
            open_outputs: true,
            ..ActionSpec::default()
        }
    }

    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let (callable, with, step, name) = (
            self.callable.clone(),
            with.to_string(),
            ctx.step.clone(),
            self.name.clone(),
        );
        let out = tokio::task::spawn_blocking(move || {
            Python::attach(|py| -> PyResult<String> {
                let json = py.import("json")?;
                let params = json.call_method1("loads", (with,))?;
                let result = callable.call1(py, (params,))?;
                json.call_method1("dumps", (result,))?.extract()
            })
        })
        .await
        .map_err(|e| {
            err!(
                External,
                "step {step:?}: the Python action {name} did not finish: {e}"
            )
        })?
        .map_err(|e| {
            err!(
                External,
                "step {step:?}: the Python action {name} raised {e}"
            )
        })?;
        match serde_json::from_str::<Value>(&out) {
            Ok(Value::Object(m)) => Ok(Outcome::Done(m)),
            Ok(Value::Null) => Ok(Outcome::Done(serde_json::Map::new())),
            Ok(other) => Err(err!(
                InvalidInput,
                "step {step:?}: {name} returned {other}; return a dict of outputs or None"
            )),
            Err(e) => Err(err!(
                InvalidInput,
                "step {step:?}: {name} returned something that is not JSON: {e}"
            )),
        }
    }
}

fn engine(
    py: Python<'_>,
    repo: Option<&Bound<'_, Repository>>,
    actions: Option<&Bound<'_, PyAny>>,
) -> PyResult<Engine> {
    let repo = match repo {
        Some(r) => r.get().inner.clone(),
        None => block_on(py, async {
            let url = std::env::var("DRKIT_REPO").map_err(|_| {
                err!(
                    InvalidInput,
                    "no repository: pass repo=drkit.Repository.open(...) or set DRKIT_REPO"
                )
            })?;
            drkit::open_repository(&url, &dr_core::repo::OpenOptions::from_env()).await
        })?,
    };
    Ok(Engine::for_repository(registry(actions)?, &repo))
}

/// This build's actions and target kinds, with the actions written in Python.
fn registry(actions: Option<&Bound<'_, PyAny>>) -> PyResult<dr_core::runbook::Registry> {
    let mut registry = drkit::registry();
    if let Some(actions) = actions {
        let items: HashMap<String, (Py<PyAny>, bool)> = actions.extract()?;
        for (name, (callable, idempotent)) in items {
            registry.action(PyAction {
                name,
                idempotent,
                callable: Arc::new(callable),
            });
        }
    }
    Ok(registry)
}

/// Checks the runbook file at `path` without a repository or any live system; returns
/// `{ok, file, runbook, steps, problems}` (each problem with `at`, `message`, `fix`).
#[pyfunction]
#[pyo3(signature = (path, *, actions=None))]
#[allow(clippy::needless_pass_by_value)] // pyo3 extracts the path as an owned value
pub fn check_runbook<'py>(
    py: Python<'py>,
    path: std::path::PathBuf,
    actions: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let registry = registry(actions)?;
    let (_, _, check) =
        dr_core::runbook::check_file(&path, &registry).map_err(crate::errors::to_py)?;
    to_python(py, &check)
}

/// The JSON Schema of runbooks (as `drkit runbook schema` prints it).
#[pyfunction]
#[pyo3(signature = (*, actions=None))]
pub fn runbook_schema<'py>(
    py: Python<'py>,
    actions: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    to_python(py, &registry(actions)?.json_schema())
}

fn json_arg(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<Value> {
    let text: String = py.import("json")?.call_method1("dumps", (v,))?.extract()?;
    serde_json::from_str(&text)
        .map_err(|e| crate::errors::to_py(err!(InvalidInput, "not JSON-like: {e}")))
}

#[allow(clippy::too_many_arguments)] // mirrors the Python keyword arguments one to one
fn options(
    py: Python<'_>,
    vars: Option<&Bound<'_, PyAny>>,
    mode: &str,
    yes: bool,
    approve: Vec<String>,
    rerun: Vec<String>,
    skip: Vec<String>,
) -> PyResult<RunOptions> {
    let vars: BTreeMap<String, Value> = match vars {
        None => BTreeMap::new(),
        Some(v) => match json_arg(py, v)? {
            Value::Object(m) => m.into_iter().collect(),
            _ => {
                return Err(crate::errors::to_py(err!(
                    InvalidInput,
                    "vars must be a dict"
                )))
            }
        },
    };
    Ok(RunOptions {
        vars,
        mode: mode.parse::<Mode>().map_err(crate::errors::to_py)?,
        yes,
        approve: approve.into_iter().collect(),
        rerun: rerun.into_iter().collect(),
        skip: skip.into_iter().collect(),
        ..RunOptions::default()
    })
}

/// A runbook, read from YAML or built from a dict.
#[pyclass(module = "drkit._native", frozen)]
pub struct Runbook {
    rb: dr_core::runbook::Runbook,
    map: SourceMap,
}

#[pymethods]
impl Runbook {
    /// Reads a runbook from a YAML file.
    #[staticmethod]
    #[allow(clippy::needless_pass_by_value)] // pyo3 extracts the path as an owned value
    fn load(path: std::path::PathBuf) -> PyResult<Self> {
        let (rb, map, problems) =
            dr_core::runbook::read_file(&path).map_err(crate::errors::to_py)?;
        if !problems.is_empty() {
            return Err(crate::errors::to_py(dr_core::runbook::report_problems(
                &map.origin,
                &problems,
            )));
        }
        Ok(Self { rb, map })
    }

    /// Builds a runbook from a dict with the fields of the YAML format.
    #[staticmethod]
    fn from_dict(py: Python<'_>, runbook: &Bound<'_, PyAny>) -> PyResult<Self> {
        let v = json_arg(py, runbook)?;
        let rb: dr_core::runbook::Runbook = serde_json::from_value(v).map_err(|e| {
            crate::errors::to_py(err!(
                InvalidInput,
                "runbook: {e}; see docs/runbooks.md for the fields"
            ))
        })?;
        let mut map = SourceMap {
            origin: "<dict>".into(),
            ..SourceMap::default()
        };
        let mut rb = rb;
        // `uses:` paths are relative to the working directory.
        dr_core::runbook::expand_uses(&mut rb, &mut map, std::path::Path::new("."))
            .map_err(crate::errors::to_py)?;
        Ok(Self { rb, map })
    }

    /// The runbook's name.
    #[getter]
    fn name(&self) -> String {
        self.rb.name.clone()
    }

    /// Checks it and says what each step would change in live systems; changes nothing.
    #[pyo3(signature = (*, repo=None, vars=None, mode="planned", actions=None))]
    fn plan<'py>(
        &self,
        py: Python<'py>,
        repo: Option<&Bound<'py, Repository>>,
        vars: Option<&Bound<'py, PyAny>>,
        mode: &str,
        actions: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let engine = engine(py, repo, actions)?;
        let (rb, map) = self.checked(&engine)?;
        let options = options(py, vars, mode, false, Vec::new(), Vec::new(), Vec::new())?;
        let plan = block_on(py, async { engine.plan(&rb, &map, &options).await })?;
        to_python(py, &plan)
    }

    /// Runs it as a drill (it must have a `drill:` section); returns the report, read
    /// from the journal: outcome, steps, the RTO and RPO achieved with verdicts.
    #[pyo3(signature = (*, repo=None, vars=None, yes=false, keep_canary=false, report_html=None, metrics_csv=None, actions=None))]
    #[allow(clippy::too_many_arguments)] // mirrors the Python keyword arguments one to one
    fn drill<'py>(
        &self,
        py: Python<'py>,
        repo: Option<&Bound<'py, Repository>>,
        vars: Option<&Bound<'py, PyAny>>,
        yes: bool,
        keep_canary: bool,
        report_html: Option<std::path::PathBuf>,
        metrics_csv: Option<std::path::PathBuf>,
        actions: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let engine = engine(py, repo, actions)?;
        let (rb, map) = self.checked(&engine)?;
        let options = options(py, vars, "planned", yes, Vec::new(), Vec::new(), Vec::new())?;
        let o = drkit::drill::DrillOptions {
            keep_canary,
            report_html,
            metrics_csv,
        };
        let outcome = block_on(py, async {
            drkit::drill::run(&engine, &rb, &map, options, &o).await
        })?;
        to_python(py, &outcome.report)
    }

    /// Runs it; returns the run (`id`, `outcome`, `steps`, `events`). `actions` maps names
    /// to `(callable, idempotent)` (what `@drkit.action` collects).
    #[pyo3(signature = (*, repo=None, vars=None, mode="planned", yes=false, approve=None, actions=None))]
    #[allow(clippy::too_many_arguments)] // mirrors the Python keyword arguments one to one
    fn run<'py>(
        &self,
        py: Python<'py>,
        repo: Option<&Bound<'py, Repository>>,
        vars: Option<&Bound<'py, PyAny>>,
        mode: &str,
        yes: bool,
        approve: Option<Vec<String>>,
        actions: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let engine = engine(py, repo, actions)?;
        let (rb, map) = self.checked(&engine)?;
        let options = options(
            py,
            vars,
            mode,
            yes,
            approve.unwrap_or_default(),
            Vec::new(),
            Vec::new(),
        )?;
        let run = block_on(py, async { engine.run(&rb, &map, &options).await })?;
        to_python(py, &run)
    }

    /// Runs it as schedule `schedule`: resumes the schedule's unfinished run, or starts
    /// one; nothing runs when `occurrence`'s run already ended or another process runs
    /// the schedule now. Returns `{"did": "started" | "resumed" | "already_ran" | "busy",
    /// "run": {...}}` (`holder`, `purpose`, `until` when busy).
    #[pyo3(signature = (schedule, *, occurrence=None, repo=None, vars=None, mode="planned", yes=false, approve=None, actions=None))]
    #[allow(clippy::too_many_arguments)] // mirrors the Python keyword arguments one to one
    fn resume_or_start<'py>(
        &self,
        py: Python<'py>,
        schedule: &str,
        occurrence: Option<&str>,
        repo: Option<&Bound<'py, Repository>>,
        vars: Option<&Bound<'py, PyAny>>,
        mode: &str,
        yes: bool,
        approve: Option<Vec<String>>,
        actions: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let engine = engine(py, repo, actions)?;
        let (rb, map) = self.checked(&engine)?;
        let options = RunOptions {
            key: Some(
                dr_core::runbook::RunKey::new(schedule, occurrence)
                    .map_err(crate::errors::to_py)?,
            ),
            ..options(
                py,
                vars,
                mode,
                yes,
                approve.unwrap_or_default(),
                Vec::new(),
                Vec::new(),
            )?
        };
        let keyed = block_on(py, async {
            engine.resume_or_start(&rb, &map, &options).await
        })?;
        to_python(py, &keyed)
    }
}

impl Runbook {
    fn checked(&self, engine: &Engine) -> PyResult<(dr_core::runbook::Runbook, SourceMap)> {
        // What was read at load (includes expanded), checked against this engine's
        // actions; the file is not read again.
        engine
            .check(&self.rb, &self.map)
            .map(|()| (self.rb.clone(), self.map.clone()))
            .map_err(crate::errors::to_py)
    }
}

/// Resumes run `run_id` from its journal (finished steps are not repeated).
#[pyfunction]
#[pyo3(signature = (run_id, *, repo=None, vars=None, approve=None, rerun=None, skip=None, take_over=false, actions=None))]
#[allow(clippy::too_many_arguments)] // mirrors the Python keyword arguments one to one
pub fn resume<'py>(
    py: Python<'py>,
    run_id: &str,
    repo: Option<&Bound<'py, Repository>>,
    vars: Option<&Bound<'py, PyAny>>,
    approve: Option<Vec<String>>,
    rerun: Option<Vec<String>>,
    skip: Option<Vec<String>>,
    take_over: bool,
    actions: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let engine = engine(py, repo, actions)?;
    let options = RunOptions {
        take_over,
        ..options(
            py,
            vars,
            "planned",
            false,
            approve.unwrap_or_default(),
            rerun.unwrap_or_default(),
            skip.unwrap_or_default(),
        )?
    };
    let run = block_on(py, async { engine.resume(run_id, &options).await })?;
    to_python(py, &run)
}

/// The report of run `run_id` from its journal alone: `format` "json" (a dict), or
/// "md", "html", "junit", "postmortem" (text; `template` replaces the post-incident one).
#[pyfunction]
#[pyo3(signature = (run_id, *, repo=None, format="json", template=None))]
pub fn report<'py>(
    py: Python<'py>,
    run_id: &str,
    repo: Option<&Bound<'py, Repository>>,
    format: &str,
    template: Option<&str>,
) -> PyResult<Bound<'py, PyAny>> {
    use dr_core::runbook::report as r;
    let engine = engine(py, repo, None)?;
    let report = block_on(py, async { engine.report(run_id).await })?;
    let text = match format {
        "json" => return to_python(py, &report),
        "md" => r::markdown(&report),
        "html" => r::html(&report),
        "junit" => r::junit(&report),
        "postmortem" => r::postmortem(&report, template).map_err(crate::errors::to_py)?,
        other => {
            return Err(crate::errors::to_py(err!(
                InvalidInput,
                "format {other:?}: give one of json, md, html, junit, postmortem"
            )))
        }
    };
    Ok(pyo3::types::PyString::new(py, &text).into_any())
}
