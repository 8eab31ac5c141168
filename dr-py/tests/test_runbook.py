"""Runbooks from Python, with an action written in Python, stopped at an approval and
resumed; errors are typed."""

import pytest

import drkit

calls: list[str] = []


@drkit.action("py.record")
def record(params):
    calls.append(params["what"])
    return {"count": len(calls)}


BOOK = {
    "version": 1,
    "name": "py-book",
    "vars": {"who": {"default": "python"}},
    "steps": [
        {"id": "first", "action": "py.record", "with": {"what": "first ${vars.who}"}},
        {"id": "ok", "action": "approve", "needs": ["first"]},
        {"id": "second", "action": "py.record", "needs": ["ok"], "with": {"what": "second ${steps.first.outputs.count}"}},
    ],
}


def test_a_python_action_runs_stops_at_an_approval_and_resumes(tmp_path):
    calls.clear()
    repo = drkit.Repository.init(f"file://{tmp_path}/repo", password="pw")
    rb = drkit.Runbook.from_dict(BOOK)
    plan = rb.plan(repo=repo)
    assert [s["id"] for s in plan["steps"]] == ["first", "ok", "second"]
    assert calls == [], "a plan runs nothing"

    run = rb.run(repo=repo, vars={"who": "py"})
    assert run.outcome == "waiting", run.to_json()
    assert run.steps["first"]["outputs"] == {"count": 1}
    assert calls == ["first py"]

    resumed = drkit.resume(run.id, repo=repo, approve=["ok"])
    assert resumed.outcome == "succeeded", resumed.to_json()
    assert calls == ["first py", "second 1"], "the finished step was not repeated"
    assert resumed.id == run.id


def test_a_schedule_resumes_its_waiting_run_and_runs_a_firing_once(tmp_path):
    calls.clear()
    repo = drkit.Repository.init(f"file://{tmp_path}/repo", password="pw")
    rb = drkit.Runbook.from_dict(BOOK)
    did, run = rb.resume_or_start("nightly", occurrence="nightly-1", repo=repo)
    assert did == "started" and run is not None and run.outcome == "waiting"
    assert calls == ["first python"]
    # The next firing finishes the schedule's run instead of starting another.
    did, again = rb.resume_or_start("nightly", occurrence="nightly-2", repo=repo, approve=["ok"])
    assert did == "resumed" and again is not None
    assert again.id == run.id and again.outcome == "succeeded", again.to_json()
    assert calls == ["first python", "second 1"]
    # A firing whose run ended runs nothing again.
    did, same = rb.resume_or_start("nightly", occurrence="nightly-2", repo=repo)
    assert did == "already_ran" and same is not None and same.id == run.id
    assert calls == ["first python", "second 1"]
    with pytest.raises(drkit.InvalidInputError, match="schedule name"):
        rb.resume_or_start("", repo=repo)


def test_bad_runbooks_and_ended_runs_are_typed_errors(tmp_path):
    repo = drkit.Repository.init(f"file://{tmp_path}/repo", password="pw")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: bad\nsteps:\n  - id: a\n    action: wiat\n    with: { for: 1s }\n")
    with pytest.raises(drkit.InvalidInputError, match=r"bad.yaml:5:\d+: .*did you mean wait"):
        drkit.Runbook.load(bad).plan(repo=repo)
    good = drkit.Runbook.from_dict({"version": 1, "name": "n", "steps": [{"id": "a", "action": "wait", "with": {"for": "1ms"}}]})
    done = good.run(repo=repo)
    assert done.outcome == "succeeded"
    with pytest.raises(drkit.ConflictError, match="already ended"):
        drkit.resume(done.id, repo=repo)


CHILD = """
import sys, time, pathlib
import drkit

marks = pathlib.Path(sys.argv[2])

@drkit.action("py.slow")
def slow(params):
    with marks.open("a") as f:
        f.write("start\\n")
    if not pathlib.Path(sys.argv[3]).exists():
        time.sleep(3600)
    return {"done": True}

repo = drkit.Repository.open(sys.argv[1], password="pw")
drkit.Runbook.from_dict({
    "version": 1, "name": "py-slow",
    "steps": [{"id": "slow", "action": "py.slow"}, {"id": "after", "action": "wait", "needs": ["slow"], "with": {"for": "1ms"}}],
}).run(repo=repo)
"""


def test_a_python_action_killed_mid_step_is_resumed_with_a_question(tmp_path):
    import os, signal, subprocess, sys, time

    url = f"file://{tmp_path}/repo"
    repo = drkit.Repository.init(url, password="pw")
    marks, go = tmp_path / "marks", tmp_path / "go"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script), url, str(marks), str(go)])
    deadline = time.time() + 60
    while not (marks.exists() and marks.read_text().count("start") == 1):
        assert time.time() < deadline, "the Python action never started"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()

    @drkit.action("py.slow")
    def slow(params):
        with marks.open("a") as f:
            f.write("start\n")
        return {"done": True}

    run_id = [r for r in os.listdir(tmp_path / "repo" / "runs")][0]
    with pytest.raises(drkit.ConflictError, match=r'rerun=\["slow"\]'):
        drkit.resume(run_id, repo=repo)
    go.touch()
    resumed = drkit.resume(run_id, repo=repo, rerun=["slow"])
    assert resumed.outcome == "succeeded", resumed.to_json()
    assert marks.read_text().count("start") == 2, "run again only when asked to"


def test_uses_works_from_a_file_and_from_a_dict(tmp_path, monkeypatch):
    calls.clear()
    repo = drkit.Repository.init(f"file://{tmp_path}/repo", password="pw")
    (tmp_path / "shared.yaml").write_text(
        "version: 1\nname: shared\nvars:\n  what: {}\nsteps:\n"
        "  - id: rec\n    action: py.record\n    with: { what: \"shared ${vars.what}\" }\n"
        "  - id: typo\n    action: py.recrod\n    needs: [rec]\n"
    )
    main = tmp_path / "main.yaml"
    main.write_text("version: 1\nname: main\nsteps:\n  - id: inc\n    uses: shared.yaml\n    with: { what: file }\n")
    # The problem is in the included file, on its own line.
    with pytest.raises(drkit.InvalidInputError, match=r"shared\.yaml:10:\d+: .*py\.recrod"):
        drkit.Runbook.load(main).plan(repo=repo)
    (tmp_path / "shared.yaml").write_text(
        "version: 1\nname: shared\nvars:\n  what: {}\nsteps:\n"
        "  - id: rec\n    action: py.record\n    with: { what: \"shared ${vars.what}\" }\n"
    )
    run = drkit.Runbook.load(main).run(repo=repo)
    assert run.outcome == "succeeded", run.to_json()
    assert list(run.steps) == ["inc/rec"]
    monkeypatch.chdir(tmp_path)
    book = {"version": 1, "name": "d", "steps": [{"id": "inc", "uses": "shared.yaml", "with": {"what": "dict"}}]}
    run = drkit.Runbook.from_dict(book).run(repo=repo)
    assert run.outcome == "succeeded", run.to_json()
    assert calls == ["shared file", "shared dict"]
