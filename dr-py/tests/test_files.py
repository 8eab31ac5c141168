"""Files and folders from Python: the same operation as `drkit backup-files` and
`drkit restore-files`, on a real folder."""

import os
import subprocess

import pytest

import drkit


def test_backup_files_and_restore_files(tmp_path):
    src = tmp_path / "media"
    (src / "2026").mkdir(parents=True)
    (src / "2026" / "photo.jpg").write_bytes(os.urandom(200_000))
    (src / "tmp.part").write_bytes(b"partial upload")
    os.symlink("2026/photo.jpg", src / "latest.jpg")
    os.chmod(src / "2026" / "photo.jpg", 0o640)

    repo = drkit.Repository.init(f"file://{tmp_path / 'repo'}", encrypt=False)
    snap = repo.backup_files([src], exclude=["*.part"], tags={"app": "shop"})
    assert snap["kind"] == "files"
    assert snap["metadata"]["files"] == 1
    assert snap["metadata"]["excluded"] == 1

    out = tmp_path / "out"
    report = repo.restore_files("latest", out)
    assert report["files"] == 1
    assert (out / "2026" / "photo.jpg").read_bytes() == (src / "2026" / "photo.jpg").read_bytes()
    assert os.stat(out / "2026" / "photo.jpg").st_mode & 0o777 == 0o640
    assert os.readlink(out / "latest.jpg") == "2026/photo.jpg"
    assert not (out / "tmp.part").exists()

    # A folder that is not empty is refused, naming the fix.
    with pytest.raises(drkit.ConflictError, match="overwrite"):
        repo.restore_files("latest", out)
    report = repo.restore_files(snap["id"], out, overwrite=True, paths=["2026"])
    assert report["files"] == 1

    with pytest.raises(drkit.NotFoundError, match="nope"):
        repo.backup_files([tmp_path / "nope"])


def test_git_bundle_and_restore(tmp_path):
    src = tmp_path / "infra"
    src.mkdir()
    git = ["git", "-c", "user.name=ops", "-c", "user.email=ops@example.com", "-C", str(src)]
    subprocess.run(git + ["init", "-q", "-b", "main"], check=True)
    (src / "app.yaml").write_text("replicas: 2\n")
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "app"], check=True)
    repo = drkit.Repository.init(f"file://{tmp_path / 'repo'}", encrypt=False)
    snap = repo.git_bundle(src)
    assert snap["kind"] == "git"
    report = repo.git_restore("latest", tmp_path / "back")
    assert report["refs"] == 1
    assert (tmp_path / "back" / "app.yaml").read_text() == "replicas: 2\n"
