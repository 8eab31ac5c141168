"""Runbooks from Python: load or build one, plan it, run it, resume a run; actions written
in Python with ``@drkit.action``.

    import drkit

    @drkit.action("myapp.drain")
    def drain(params):
        return {"drained": pool(params["pool"]).drain()}

    rb = drkit.Runbook.load("failover.yaml")
    print(rb.plan()["steps"])
    run = rb.run(vars={"replica": "shop-usw2"}, approve=["promote"])
    assert run.outcome == "succeeded", run.to_json()
"""

from __future__ import annotations

import json
from os import PathLike
from typing import Any, Callable, Mapping, Sequence

from drkit import _native

# Actions registered by @drkit.action, by name: this frontend's own registry, passed to
# every plan, run and resume it starts.
_ACTIONS: dict[str, tuple[Callable[[dict[str, Any]], Any], bool]] = {}


def action(name: str, *, idempotent: bool = False) -> Callable[[Callable[[dict[str, Any]], Any]], Callable[[dict[str, Any]], Any]]:
    """Registers a Python function as the runbook action ``name``: it gets the step's
    parameters (a dict) and returns its outputs (a dict, or None). Not idempotent unless
    said: a run that died while it ran asks before running it again."""

    def register(fn: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        _ACTIONS[name] = (fn, idempotent)
        return fn

    return register


class Run:
    """What a run did: ``id``, ``outcome``, ``steps`` (by id), the journal's ``events``."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self._doc = doc
        self.id: str = doc["id"]
        self.outcome: str = doc["outcome"]
        self.steps: dict[str, dict[str, Any]] = {s["id"]: s for s in doc["steps"]}
        self.events: list[dict[str, Any]] = doc.get("events", [])

    def to_json(self) -> str:
        """The run as `drkit runs show --json` prints it."""
        return json.dumps(self._doc)

    def __repr__(self) -> str:
        return f"Run({self.id!r}, outcome={self.outcome!r})"


class Runbook:
    """A runbook, read from YAML (``load``) or built from a dict (``from_dict``)."""

    def __init__(self, native: _native.Runbook) -> None:
        self._native = native

    @staticmethod
    def load(path: str | PathLike[str]) -> Runbook:
        return Runbook(_native.Runbook.load(path))

    @staticmethod
    def from_dict(runbook: Mapping[str, Any]) -> Runbook:
        return Runbook(_native.Runbook.from_dict(runbook))

    @property
    def name(self) -> str:
        return self._native.name

    def plan(self, *, repo: _native.Repository | None = None, vars: Mapping[str, Any] | None = None, mode: str = "planned") -> dict[str, Any]:
        """Every problem at once, then what each step would change; changes nothing."""
        return self._native.plan(repo=repo, vars=vars, mode=mode, actions=_ACTIONS)

    def run(
        self,
        *,
        repo: _native.Repository | None = None,
        vars: Mapping[str, Any] | None = None,
        mode: str = "planned",
        yes: bool = False,
        approve: Sequence[str] | None = None,
    ) -> Run:
        """Runs it, journaled in ``repo`` (default: ``DRKIT_REPO``) under its lock."""
        return Run(self._native.run(repo=repo, vars=vars, mode=mode, yes=yes, approve=list(approve or []), actions=_ACTIONS))

    def resume_or_start(
        self,
        schedule: str,
        *,
        occurrence: str | None = None,
        repo: _native.Repository | None = None,
        vars: Mapping[str, Any] | None = None,
        mode: str = "planned",
        yes: bool = False,
        approve: Sequence[str] | None = None,
    ) -> tuple[str, Run | None]:
        """Runs it as ``schedule`` (``drkit run --resume-or-start``): resumes the
        schedule's unfinished run, or starts one; nothing runs when ``occurrence``'s run
        already ended or another process runs the schedule now. Returns what it did
        (``"started"``, ``"resumed"``, ``"already_ran"``, ``"busy"``) and the run (None
        when busy)."""
        doc = self._native.resume_or_start(
            schedule, occurrence=occurrence, repo=repo, vars=vars, mode=mode, yes=yes, approve=list(approve or []), actions=_ACTIONS
        )
        return doc["did"], Run(doc["run"]) if "run" in doc else None


class Drill:
    """A drill: a runbook file with a ``drill:`` section (its sandbox, canary, disaster,
    ``recovered`` checks and teardown around the recovery under test)::

        report = drkit.Drill.load("drill.yaml").run(vars={"primary": ..., "replica": ...})
        assert report["rto"]["verdict"] == "met", report["rto"]["why"]
    """

    def __init__(self, runbook: Runbook) -> None:
        self.runbook = runbook

    @staticmethod
    def load(path: str | PathLike[str]) -> Drill:
        return Drill(Runbook.load(path))

    @property
    def name(self) -> str:
        return self.runbook.name

    def run(
        self,
        *,
        repo: _native.Repository | None = None,
        vars: Mapping[str, Any] | None = None,
        yes: bool = False,
        keep_canary: bool = False,
        report_html: str | PathLike[str] | None = None,
        metrics_csv: str | PathLike[str] | None = None,
    ) -> dict[str, Any]:
        """Runs the drill, journaled in ``repo`` (default: ``DRKIT_REPO``); returns its
        report: ``outcome``, ``steps``, ``rto`` and ``rpo`` (``achieved_seconds``,
        ``objective_seconds``, ``verdict``: met, missed, inconclusive), ``drill`` (the
        disaster, the canary's figures)."""
        return self.runbook._native.drill(
            repo=repo,
            vars=vars,
            yes=yes,
            keep_canary=keep_canary,
            report_html=report_html,
            metrics_csv=metrics_csv,
            actions=_ACTIONS,
        )


def report(run_id: str, *, repo: _native.Repository | None = None, format: str = "json", template: str | None = None) -> Any:
    """The report of run ``run_id`` from its journal alone (as ``drkit report``): a dict
    for ``format="json"``, else text in ``md``, ``html``, ``junit`` or ``postmortem``
    (``template``: a minijinja template replacing the post-incident one)."""
    return _native.report(run_id, repo=repo, format=format, template=template)


def check(path: str | PathLike[str]) -> dict[str, Any]:
    """Checks the runbook file at ``path`` without a repository or any live system (as
    ``drkit runbook check`` does): ``{"ok", "file", "runbook", "steps", "problems"}``, each
    problem with ``at`` (line, column), ``message`` and ``fix``. Raises ``InvalidInput``
    only for a file that is not YAML."""
    return _native.check_runbook(path, actions=_ACTIONS)


def schema() -> dict[str, Any]:
    """The JSON Schema of runbooks, with this build's actions and those registered here."""
    return _native.runbook_schema(actions=_ACTIONS)


def resume(
    run_id: str,
    *,
    repo: _native.Repository | None = None,
    vars: Mapping[str, Any] | None = None,
    approve: Sequence[str] | None = None,
    rerun: Sequence[str] | None = None,
    skip: Sequence[str] | None = None,
    take_over: bool = False,
) -> Run:
    """Resumes a run from its journal: finished steps are not repeated.

    ``take_over=True`` is for a run whose machine is dead: it waits until the run's lease
    runs out unrenewed, then takes the run over (journaled).
    """
    return Run(
        _native.resume(
            run_id,
            repo=repo,
            vars=vars,
            approve=list(approve or []),
            rerun=list(rerun or []),
            skip=list(skip or []),
            take_over=take_over,
            actions=_ACTIONS,
        )
    )
