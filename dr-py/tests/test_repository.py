"""drkit from Python, against a real throwaway PostgreSQL."""

import os
import re
import subprocess

import pytest

import drkit

def PSQL_BIN():
    versions = sorted(os.listdir("/usr/lib/postgresql"), key=int)
    return f"/usr/lib/postgresql/{versions[-1]}/bin/psql"


def psql(cluster, db, sql):
    out = subprocess.run(
        [PSQL_BIN(), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", cluster.dsn(db), "-c", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


@pytest.fixture(scope="module")
def cluster():
    with drkit.TempCluster(password="py-test-pw") as c:
        psql(c, "postgres", "CREATE DATABASE shop")
        psql(
            c,
            "shop",
            "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(10,2), note text);"
            "INSERT INTO orders SELECT g, g / 3.0, md5(g::text) FROM generate_series(1, 20000) g",
        )
        yield c


CHECKSUM = "SELECT count(*) || ':' || md5(string_agg(o::text, '' ORDER BY id)) FROM orders o"


def test_backup_restore_verify(tmp_path, cluster):
    repo = drkit.Repository.init(f"file://{tmp_path}/repo", password="correct horse")
    assert repo.encrypted
    snap = repo.backup(cluster.dsn("shop"), tags={"from": "python"})
    assert snap["tags"] == {"from": "python"}
    assert snap["raw_bytes"] > 0 and snap["stored_bytes"] > 0
    assert "py-test-pw" not in snap["source"]
    counts = {t["table"]: t["rows"] for t in snap["metadata"]["tables"]}
    assert counts == {"orders": 20000}

    listed = drkit.Repository.open(f"file://{tmp_path}/repo", password="correct horse").snapshots()
    assert [s["id"] for s in listed] == [snap["id"]]

    report = repo.restore("latest", to=cluster.dsn("shop_copy"))
    assert report["mode"] == "auto"
    assert psql(cluster, "shop_copy", CHECKSUM) == psql(cluster, "shop", CHECKSUM)

    assert repo.verify(snap["id"])["ok"] is True
    checked = repo.verify_restore("latest", cluster.dsn(), checks=["SELECT count(*) = 20000 FROM orders"])
    assert checked["ok"] is True
    assert checked["tables"][0]["actual"] == 20000


def test_both_formats_and_per_table_figures(tmp_path, cluster):
    repo = drkit.Repository.init(f"file://{tmp_path}/repo", password="correct horse")
    streams = repo.backup(cluster.dsn("shop"), jobs=2, split_bytes=64 * 1024)
    assert streams["metadata"]["format"] == "streams"
    table = streams["metadata"]["tables"][0]
    assert table["rows"] == 20000 and table["copied_bytes"] > 0 and table["secs"] >= 0
    assert len({p["from_page"] for f in streams["metadata"]["data"] for p in f["parts"]}) > 1, "split into ranges"
    old = repo.backup(cluster.dsn("shop"), format="pg-dump")
    assert old["metadata"]["format"] == "pg-dump"
    with pytest.raises(drkit.InvalidInputError, match="streams, pg-dump"):
        repo.backup(cluster.dsn("shop"), format="tar")

    for snap, db in [(streams, "shop_streams"), (old, "shop_dump")]:
        report = repo.restore(snap["id"], to=cluster.dsn(db))
        assert report["format"] == snap["metadata"]["format"]
        assert psql(cluster, db, CHECKSUM) == psql(cluster, "shop", CHECKSUM)
    loaded = repo.restore(streams["id"], to=cluster.dsn("shop_again"))["tables"]
    assert [(t["table"], t["rows"]) for t in loaded] == [("public.orders", 20000)]


def test_errors_are_typed_and_say_what_to_do(tmp_path, cluster):
    with pytest.raises(drkit.NotFoundError, match=r"create one with drkit\.Repository\.init\("):
        drkit.Repository.open(f"file://{tmp_path}/nothing", password="x")
    drkit.Repository.init(f"file://{tmp_path}/repo", password="right")
    with pytest.raises(drkit.WrongKeyError):
        drkit.Repository.open(f"file://{tmp_path}/repo", password="wrong")
    with pytest.raises(drkit.AlreadyExistsError):
        drkit.Repository.init(f"file://{tmp_path}/repo", password="right")
    repo = drkit.Repository.open(f"file://{tmp_path}/repo", password="right")
    with pytest.raises(drkit.PermissionDeniedError) as info:
        repo.backup(cluster.dsn("shop").replace("py-test-pw", "nope"))
    assert "nope" not in str(info.value)
    with pytest.raises(drkit.InvalidInputError):
        repo.restore("latest", to=cluster.dsn("x"), mode="sideways")
    with pytest.raises(drkit.NotFoundError):
        repo.restore("latest", to=cluster.dsn("x"))
    assert issubclass(drkit.CorruptError, drkit.DrkitError)


def test_prune_and_status(tmp_path, cluster):
    repo = drkit.Repository.init(f"file://{tmp_path}/repo", password="pw")
    ids = [repo.backup(cluster.dsn("shop"))["id"] for _ in range(3)]
    dry = repo.prune(keep_last=1, dry_run=True)
    assert [d["keep"] for d in dry["report"]["decisions"]] == [False, False, True]
    assert len(repo.snapshots()) == 3
    with pytest.raises(drkit.InvalidInputError):
        repo.prune()  # a policy that keeps nothing
    done = repo.prune(keep_last=1, grace="0s")
    assert done["report"]["removed"] == ids[:2]
    assert [s["id"] for s in repo.snapshots()] == ids[2:]

    objectives = [{"name": "shop", "source": "/shop", "rpo": "1h", "verified_within": "1d"}]
    report = repo.status(objectives)
    assert report["ok"] is False and "never verified" in report["objectives_missed"][0]
    assert report["sources"][0]["at_risk_seconds"] < 600
    with pytest.raises(drkit.InvalidInputError):
        repo.status([{"name": "x", "source": "y", "rpoo": "1h"}])


def test_key_slots(tmp_path):
    repo = drkit.Repository.init(f"file://{tmp_path}/repo", password="typed")
    slot = repo.add_key(generate_key_file=tmp_path / "archive.key", label="archive_command")
    assert slot["label"] == "archive_command"
    by_key = drkit.Repository.open(f"file://{tmp_path}/repo", key_file=tmp_path / "archive.key")
    assert by_key.encrypted
    assert [s["id"] for s in repo.key_slots()] == [slot["id"]]
    with pytest.raises(drkit.InvalidInputError, match="exactly one"):
        repo.add_key(password="a", key_file=tmp_path / "archive.key")
    repo.remove_key(slot["id"])
    with pytest.raises(drkit.WrongKeyError):
        drkit.Repository.open(f"file://{tmp_path}/repo", key_file=tmp_path / "archive.key")


def test_verifications_from_python_count_for_status(tmp_path, cluster):
    repo = drkit.Repository.init(f"file://{tmp_path}/repo", password="pw")
    repo.backup(cluster.dsn("shop"))
    objectives = [{"name": "shop", "source": "/shop", "rto": "1h", "verified_within": "1d"}]
    missed = repo.status(objectives)["objectives_missed"]
    assert any("never verified" in m for m in missed) and not any("drkit verify`" in m for m in missed)

    checked = repo.verify_restore("latest", cluster.dsn(), checks=["SELECT count(*) = 20000 FROM orders"])
    assert checked["ok"] is True
    report = repo.status(objectives)
    assert report["ok"] is True, report["objectives_missed"]
    assert report["sources"][0]["last_restore_test_seconds"] > 0

    # A later chunk re-read keeps the measured restore time: the RTO objective still holds.
    assert repo.verify("latest")["ok"] is True
    again = repo.status(objectives)
    assert again["ok"] is True, again["objectives_missed"]
    assert again["sources"][0]["last_restore_test_seconds"] == report["sources"][0]["last_restore_test_seconds"]

    with pytest.raises(drkit.InvalidInputError, match="shop.*rpo.*1hour-ish"):
        repo.status([{"name": "shop", "source": "/shop", "rpo": "1hour-ish"}])


def test_password_files_are_read_by_the_library(tmp_path):
    empty = tmp_path / "empty-first-line"
    empty.write_text("\nsecond line\n")
    with pytest.raises(drkit.InvalidInputError, match=re.escape(str(empty))):
        drkit.Repository.init(f"file://{tmp_path}/repo", password_file=empty)
    good = tmp_path / "passphrase"
    good.write_text("correct horse\n")
    drkit.Repository.init(f"file://{tmp_path}/repo", password_file=good)
    assert drkit.Repository.open(f"file://{tmp_path}/repo", password="correct horse").encrypted


def test_latest_restores_the_database_it_is_about(tmp_path, cluster):
    """A repository with dumps of two databases: `latest` is the newest dump of the
    database restored into (or of `source`), never another database's; `before` and
    `random_within` narrow it."""
    from datetime import datetime, timezone

    psql(cluster, "postgres", "CREATE DATABASE blog")
    psql(cluster, "blog", "CREATE TABLE posts (id int); INSERT INTO posts VALUES (1)")
    repo = drkit.Repository.init(f"file://{tmp_path}/repo", password="pw")
    first = repo.backup(cluster.dsn("shop"))
    between = datetime.now(timezone.utc).isoformat()
    second = repo.backup(cluster.dsn("shop"))
    blog = repo.backup(cluster.dsn("blog"))

    # The target's name is no source's, and there are two: refused, naming both.
    with pytest.raises(drkit.NotFoundError) as info:
        repo.restore("latest", to=cluster.dsn("neither"))
    assert "blog" in str(info.value) and "shop" in str(info.value) and "source" in str(info.value)
    assert psql(cluster, "postgres", "SELECT count(*) FROM pg_database WHERE datname = 'neither'") == "0"

    assert repo.restore("latest", to=cluster.dsn("blog_py"), source="blog")["snapshot"] == blog["id"]
    assert psql(cluster, "blog_py", "SELECT count(*) FROM posts") == "1"
    assert repo.restore("latest", to=cluster.dsn("shop_py_before"), source="shop", before=between)["snapshot"] == first["id"]
    drawn = repo.restore("latest", to=cluster.dsn("shop_py_random"), source="shop", random_within="1h")["snapshot"]
    assert drawn in (first["id"], second["id"])
    with pytest.raises(drkit.InvalidInputError, match="not a moment"):
        repo.restore("latest", to=cluster.dsn("x"), source="shop", before="yesterday")


def test_sql_runs_as_the_steps_run_it(cluster):
    """`sql_exec`, `sql_query` and `pg_ready` are the operations of the `sql.exec`,
    `sql.query` and `pg.ready` steps: statements that cannot run in a transaction run on
    their own, rows come back by column name with their types."""
    admin = cluster.dsn("postgres")
    assert drkit.pg_ready(admin, timeout=30)["seconds"] >= 0
    done = drkit.sql_exec(admin, ["DROP DATABASE IF EXISTS sql_py", "CREATE DATABASE sql_py"])
    assert done == {"statements": 2, "transaction": False}
    url = cluster.dsn("sql_py")
    assert drkit.sql_exec(url, ["CREATE TABLE t (n int, at timestamptz)", "INSERT INTO t SELECT g, now() FROM generate_series(1, 3) g"])["transaction"] is True
    rows = drkit.sql_query(url, "SELECT count(*) AS n, max(n) AS top FROM t")
    assert rows["row"] == {"n": 3, "top": 3}
    assert drkit.sql_query(url, "SELECT n FROM t ORDER BY n", limit=2) == {"row": {"n": 1}, "rows": [{"n": 1}, {"n": 2}], "count": 2, "truncated": True}
    assert drkit.sql_query(url, "SELECT 1 AS one -- a comment ends the line")["row"] == {"one": 1}
    assert drkit.sql_query(url, "SHOW server_version_num")["row"]["server_version_num"].startswith("15")
    with pytest.raises(drkit.ExternalError, match="read-only transaction"):
        drkit.sql_query(url, "DELETE FROM t")
    assert drkit.sql_query(url, "SELECT count(*) AS n FROM t")["row"] == {"n": 3}
    wrong = url.replace(f":{drkit_password(url)}@", ":not-the-password@")
    with pytest.raises(drkit.PermissionDeniedError):
        drkit.pg_ready(wrong, timeout=600)
    with pytest.raises(drkit.InvalidInputError, match="cannot run inside a transaction"):
        drkit.sql_exec(admin, ["DROP DATABASE sql_py"], transaction=True)
    assert psql(cluster, "postgres", "SELECT count(*) FROM pg_database WHERE datname = 'sql_py'") == "1"


def drkit_password(url: str) -> str:
    """The password in a postgres:// URL."""
    from urllib.parse import urlparse

    return urlparse(url).password or ""
