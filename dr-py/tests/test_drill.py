"""drkit.failover_drill from Python: the drill drkit demo ends with, its numbers consistent."""

import drkit


def test_the_failover_drill_reports_what_it_measured():
    report = drkit.failover_drill(orders=1000, write_for=1.0)
    assert report["outcome"] == "succeeded", report
    assert [s["id"] for s in report["steps"]] == ["health", "promote", "check", "takes-writes", "backup"]
    assert report["orders_acknowledged"] > 0
    assert report["orders_recovered"] + report["orders_lost"] == report["orders_acknowledged"]
    assert report["rto_seconds"] > 0
    assert (report["rpo_seconds"] == 0) == (report["orders_lost"] == 0)
    assert report["rto_objective_seconds"] == 60 and report["rpo_objective_seconds"] == 5
    assert report["rto_met"] == (report["rto_seconds"] <= 60)
    assert report["rpo_met"] == (report["rpo_seconds"] <= 5)
    assert report["ok"] == (report["rto_met"] and report["rpo_met"])
    assert report["backup"] and report["repository"] is None


def test_a_negative_write_time_is_refused():
    try:
        drkit.failover_drill(write_for=-1.0)
    except drkit.InvalidInputError as e:
        assert "write_for" in str(e)
    else:
        raise AssertionError("a negative write_for was taken")
