"""Redis from Python: the same operations as `drkit backup redis://…` and
`drkit restore-redis`, against Debian's redis-server."""

import shutil
import socket
import subprocess
import time

import pytest

import drkit


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def redis_server(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is missing: run scripts/setup --services")
    servers = []

    def start(name):
        port = free_port()
        folder = tmp_path / name
        folder.mkdir()
        p = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(folder)],
            stdout=subprocess.DEVNULL,
        )
        servers.append(p)
        for _ in range(200):
            if subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True, text=True).stdout.strip() == "PONG":
                break
            time.sleep(0.05)
        return port

    yield start
    for p in servers:
        p.kill()
        p.wait()


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], check=True, capture_output=True, text=True).stdout.strip()


def test_backup_and_restore_redis(tmp_path, redis_server):
    source, target = redis_server("a"), redis_server("b")
    cli(source, "SET", "greeting", "hello")
    cli(source, "HSET", "user:1", "name", "Ada", "plan", "pro")
    cli(source, "-n", "2", "RPUSH", "queue", "a", "b")
    repo = drkit.Repository.init(f"file://{tmp_path / 'repo'}", encrypt=False)
    snap = repo.backup_redis(f"redis://127.0.0.1:{source}")
    assert snap["kind"] == "redis"
    assert snap["metadata"]["keys"] == {"0": 2, "2": 1}
    report = repo.restore_redis("latest", url=f"redis://127.0.0.1:{target}")
    assert report["keys"] == {"0": 2, "2": 1}
    assert cli(target, "HGET", "user:1", "name") == "Ada"
    assert cli(target, "-n", "2", "LRANGE", "queue", "0", "-1") == "a\nb"
    with pytest.raises(drkit.ConflictError, match="overwrite"):
        repo.restore_redis("latest", url=f"redis://127.0.0.1:{target}")
    with pytest.raises(drkit.InvalidInputError, match="either"):
        repo.restore_redis("latest")
