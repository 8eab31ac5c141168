"""Drills from Python: drkit.Drill on a throwaway primary and its replica, the report
read back with drkit.report; drkit.failover_drill, the drill drkit demo ends with."""

import pathlib

import drkit
import pytest

DRILL = pathlib.Path(__file__).parents[2] / "examples" / "runbooks" / "drill.yaml"


def test_a_drill_from_python_measures_what_the_recovered_database_holds(tmp_path):
    repo = drkit.Repository.init(f"file://{tmp_path}/repo", password="pw")
    with drkit.TempCluster() as primary:
        drkit.sql_exec(primary.dsn(), ["CREATE DATABASE shop"])
        drkit.sql_exec(primary.dsn("shop"), ["CREATE TABLE orders (id bigserial PRIMARY KEY, amount numeric NOT NULL, note text)", "INSERT INTO orders (amount) SELECT g FROM generate_series(1, 100) g"])
        with primary.start_replica() as replica:
            report = drkit.Drill.load(DRILL).run(
                repo=repo,
                vars={"primary": primary.dsn("shop"), "replica": replica.dsn("shop"), "write_for": "500ms"},
                keep_canary=True,
                metrics_csv=tmp_path / "metrics.csv",
            )
            assert report["outcome"] == "succeeded", report
            held = drkit.sql_query(replica.dsn("shop"), f"SELECT seq FROM drkit_canary.writes WHERE run = '{report['run']}'")
            canary = report["drill"]["canary"]
            assert canary["recovered"] + canary["unknown_present"] == len(held["rows"])
            assert canary["newest_present"] == max(int(row["seq"]) for row in held["rows"]) or canary["unknown_present"] > 0
    assert report["rto"]["verdict"] in ("met", "missed")
    assert report["rpo"]["achieved_seconds"] >= 0
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0].startswith("time,runbook,kind")
    again = drkit.report(report["run"], repo=repo)
    assert again["steps"] == report["steps"] and again["rto"] == report["rto"]
    junit = drkit.report(report["run"], repo=repo, format="junit")
    assert 'name="primary-lost"' in junit
    with pytest.raises(drkit.InvalidInputError, match="format"):
        drkit.report(report["run"], repo=repo, format="pdf")


def test_a_runbook_without_a_drill_section_is_not_run_as_a_drill(tmp_path):
    repo = drkit.Repository.init(f"file://{tmp_path}/repo", password="pw")
    path = tmp_path / "plain.yaml"
    path.write_text("version: 1\nname: plain\nsteps:\n  - id: pause\n    action: wait\n    with: { for: 1s }\n")
    with pytest.raises(drkit.InvalidInputError, match="no `drill:` section"):
        drkit.Drill.load(path).run(repo=repo)


def test_the_demo_drill_reports_what_it_measured():
    demo = drkit.failover_drill(orders=1000, write_for=1.0)
    report = demo["report"]
    assert report["outcome"] == "succeeded", report
    assert [s["id"] for s in report["steps"]][:5] == ["sandbox-ready", "canary", "writes-go-on", "primary-lost", "canary-stopped"]
    canary = report["drill"]["canary"]
    assert canary["acknowledged"] > 0
    assert canary["recovered"] + canary["lost"] == canary["acknowledged"]
    assert report["rto"]["objective_seconds"] == 60 and report["rpo"]["objective_seconds"] == 5
    assert report["rto"]["verdict"] == ("met" if report["rto"]["achieved_seconds"] <= 60 else "missed")
    assert demo["ok"] == (report["outcome"] == "succeeded" and report["rto"]["verdict"] == "met" and report["rpo"]["verdict"] == "met")
    assert demo["backup"] and demo["repository"] is None
    assert pathlib.Path(demo["report_html"]).read_text().startswith("<!DOCTYPE html>")


def test_a_negative_write_time_is_refused():
    with pytest.raises(drkit.InvalidInputError, match="write_for"):
        drkit.failover_drill(write_for=-1.0)
