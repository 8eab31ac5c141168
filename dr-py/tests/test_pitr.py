"""Base backups and point-in-time recovery from Python; PostgreSQL archives through the CLI."""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import drkit
from test_repository import PSQL_BIN, psql

PASSWORD = "py-pitr-pw"


def drkit_bin():
    path = os.environ.get("DRKIT_BIN") or shutil.which("drkit")
    if not path:
        if os.environ.get("CI"):
            pytest.fail("DRKIT_BIN is not set: scripts/test exports the CLI it built")
        pytest.skip("the drkit CLI is needed as archive_command (set DRKIT_BIN)")
    return path


def as_server(path):
    """Gives `path` (recursively) to the postgres user when running as root."""
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        for root, dirs, files in os.walk(path):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.chown(name, pg.pw_uid, pg.pw_gid)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_ctl(*args):
    cmd = [str(Path(PSQL_BIN()).parent / "pg_ctl"), *args]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    subprocess.run(cmd, capture_output=True, check=False)


def test_basebackup_then_recover_to_the_latest(monkeypatch):
    binary = drkit_bin()
    work = Path(tempfile.mkdtemp(prefix="drkit-py-pitr-"))
    try:
        repo_dir, key = work / "repo", work / "key"
        url = f"file://{repo_dir}"
        subprocess.run(
            [binary, "--quiet", "--repo", url, "repo", "init", "--generate-key-file", str(key)],
            check=True,
            capture_output=True,
        )
        as_server(work)
        archive = f"DRKIT_KEY_FILE={key} {binary} --quiet --repo {url} wal-push %p"
        repo = drkit.Repository.open(url, key_file=key)
        with drkit.TempCluster(
            password=PASSWORD, settings={"archive_mode": "on", "archive_command": archive}
        ) as c:
            psql(c, "postgres", "CREATE TABLE t (batch int, n int)")
            psql(c, "postgres", "INSERT INTO t SELECT 1, g FROM generate_series(1, 1000) g")
            base = repo.basebackup(c.dsn())
            assert base["kind"] == "pg_basebackup"
            assert base["metadata"]["first_wal"] <= base["metadata"]["last_wal"]
            psql(c, "postgres", "INSERT INTO t SELECT 2, g FROM generate_series(1, 1000) g")
            closed = psql(c, "postgres", "SELECT pg_walfile_name(pg_switch_wal())")
            deadline = time.monotonic() + 60
            while psql(c, "postgres", "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") < closed:
                assert time.monotonic() < deadline, f"{closed} was not archived"
                time.sleep(0.1)
        # The primary is gone.
        verified = repo.wal_verify()
        assert verified["ok"] is True
        assert verified["base_backups"] == [{"snapshot": base["id"], "stops_at_missing": None}]

        with pytest.raises(drkit.InvalidInputError, match="exactly one"):
            repo.pitr(work / "x", latest=True, target_name="also")
        with pytest.raises(drkit.NotFoundError, match="drkit CLI"):
            repo.pitr(work / "x", latest=True, drkit=work / "no-such-binary")

        monkeypatch.setenv("DRKIT_KEY_FILE", str(key))
        port = free_port()
        pgdata = work / "restored"
        report = repo.pitr(
            pgdata,
            latest=True,
            start=True,
            timeout=120,
            settings={"port": str(port), "unix_socket_directories": str(work)},
            drkit=binary,
        )
        try:
            assert report["promoted"] is True
            assert report["manifest_verified"] is True
            assert report["plan"]["snapshot"] == base["id"]
            rows = subprocess.run(
                [PSQL_BIN(), "-X", "-At", "-d", f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/postgres",
                 "-c", "SELECT string_agg(batch || ':' || n, ',' ORDER BY batch) FROM "
                       "(SELECT batch, count(*) n FROM t GROUP BY batch) x"],
                check=True, capture_output=True, text=True,
            ).stdout.strip()
            assert rows == "1:1000,2:1000"
        finally:
            pg_ctl("-D", str(pgdata), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(work, ignore_errors=True)
