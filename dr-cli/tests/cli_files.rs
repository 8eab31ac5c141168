//! Files and folders through the `drkit` binary: backup-files and restore-files give the
//! tree back (its contents unreadable in an encrypted repository), a non-empty folder is
//! refused, a backup killed mid-way leaves no snapshot, and a runbook's `files.backup`
//! and `files.restore` steps do the same as the commands.

use std::fs;
use std::path::Path;
use std::time::Duration;

use dr_testkit::{stderr, Drkit};

const BIN: &str = env!("CARGO_BIN_EXE_drkit");
const SECRET: &[u8] = b"card-number-4111111111111111";

fn encrypted_repo(dir: &Path) -> Drkit {
    let key = dir.join("key");
    let mut d = Drkit::local(BIN, &dir.join("repo"));
    d.env = vec![("DRKIT_KEY_FILE".into(), key.display().to_string())];
    let out = d.run(&["repo", "init", "--generate-key-file", key.to_str().unwrap()]);
    assert!(out.status.success(), "repo init: {}", stderr(&out));
    d
}

fn tree(root: &Path) {
    fs::create_dir_all(root.join("uploads/2026")).unwrap();
    fs::create_dir_all(root.join("cache")).unwrap();
    fs::write(root.join("uploads/2026/invoice.txt"), SECRET).unwrap();
    fs::write(root.join("uploads/2026/photo.jpg"), vec![7u8; 300_000]).unwrap();
    fs::write(root.join("cache/tmp.bin"), b"throwaway").unwrap();
    std::os::unix::fs::symlink("uploads/2026", root.join("current")).unwrap();
}

fn grep(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

#[test]
fn backup_files_and_restore_files_give_the_tree_back() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("data");
    tree(&src);
    let d = encrypted_repo(dir.path());
    let snap = d.json(&[
        "backup-files",
        src.to_str().unwrap(),
        "--exclude",
        "cache",
        "--tag",
        "app=shop",
    ]);
    assert_eq!(snap["kind"], "files");
    assert_eq!(snap["metadata"]["files"], 2);
    assert_eq!(snap["metadata"]["excluded"], 1);
    assert!(
        grep(&dir.path().join("repo"), SECRET).is_empty(),
        "file contents readable in the repository"
    );

    let to = dir.path().join("restored");
    let report = d.json(&["restore-files", "latest", "--to", to.to_str().unwrap()]);
    assert_eq!(report["files"], 2, "{report}");
    assert_eq!(
        fs::read(to.join("uploads/2026/invoice.txt")).unwrap(),
        SECRET
    );
    assert_eq!(
        fs::read_link(to.join("current")).unwrap(),
        Path::new("uploads/2026")
    );
    assert!(!to.join("cache").exists(), "excluded folder restored");

    // Again into the same folder: refused, naming the fix; nothing changed.
    fs::write(to.join("uploads/2026/invoice.txt"), b"edited").unwrap();
    let out = d.run(&["restore-files", "latest", "--to", to.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--overwrite"), "{}", stderr(&out));
    assert_eq!(
        fs::read(to.join("uploads/2026/invoice.txt")).unwrap(),
        b"edited"
    );
    let id = snap["id"].as_str().unwrap();
    let report = d.json(&[
        "restore-files",
        &id[..12],
        "--to",
        to.to_str().unwrap(),
        "--overwrite",
        "--path",
        "uploads/2026/invoice.txt",
    ]);
    assert_eq!(report["files"], 1, "{report}");
    assert_eq!(
        fs::read(to.join("uploads/2026/invoice.txt")).unwrap(),
        SECRET
    );

    // The generic commands take files snapshots too: verify re-reads every chunk.
    let verified = d.json(&["verify", id]);
    assert!(
        verified.to_string().contains("\"ok\":true")
            || verified.to_string().contains("\"problems\":[]"),
        "{verified}"
    );

    // A Postgres restore of a files snapshot is refused, naming its kind.
    let out = d.run(&["restore", id, "--to", "postgres://postgres@127.0.0.1:1/x"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("files"), "{}", stderr(&out));
}

#[test]
fn a_backup_killed_midway_leaves_no_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big");
    fs::create_dir(&src).unwrap();
    // 200 MiB that do not compress: long enough to be killed in the middle.
    let mut block = vec![0u8; 4 << 20];
    for i in 0..50u64 {
        let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for word in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        fs::write(src.join(format!("part-{i:03}")), &block).unwrap();
    }
    let d = encrypted_repo(dir.path());
    let mut child = d
        .cmd(&["backup-files", src.to_str().unwrap()])
        .spawn()
        .unwrap();
    let chunks = dir.path().join("repo/chunks");
    let deadline = std::time::Instant::now() + Duration::from_mins(2);
    while grep_count(&chunks) < 10 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the backup finished before it could be killed"
    );
    let list = d.json(&["snapshots"]);
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");
    // The next backup completes and restores.
    let snap = d.json(&["backup-files", src.to_str().unwrap()]);
    assert_eq!(snap["metadata"]["files"], 50);
}

fn grep_count(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |d| {
        d.flatten()
            .map(|e| fs::read_dir(e.path()).map_or(0, Iterator::count))
            .sum()
    })
}

#[test]
fn a_runbook_backs_up_and_restores_files() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("app-data");
    tree(&src);
    let to = dir.path().join("dr-region/app-data");
    let book = dir.path().join("files.yaml");
    fs::write(
        &book,
        format!(
            "version: 1\nname: files-dr\nsteps:\n  - id: backup\n    action: files.backup\n    with: {{ paths: [\"{}\"], exclude: [cache] }}\n  - id: restore\n    action: files.restore\n    needs: [backup]\n    with: {{ snapshot: \"${{steps.backup.outputs.snapshot}}\", to: \"{}\" }}\n",
            src.display(),
            to.display()
        ),
    )
    .unwrap();
    let d = encrypted_repo(dir.path());
    let plan = d.run(&["plan", book.to_str().unwrap()]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    let shown = String::from_utf8_lossy(&plan.stdout);
    assert!(shown.contains("leaving out cache"), "{shown}");
    let run = d.json(&["run", book.to_str().unwrap()]);
    assert_eq!(run["outcome"], "succeeded", "{run}");
    assert_eq!(
        fs::read(to.join("uploads/2026/invoice.txt")).unwrap(),
        SECRET
    );
    assert!(!to.join("cache").exists());
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=ops",
            "-c",
            "user.email=ops@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_git_repository_comes_back_with_every_branch_and_tag() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("manifests");
    fs::create_dir(&src).unwrap();
    git(&src, &["init", "-q"]);
    let d = encrypted_repo(dir.path());
    // No commits yet: refused, naming the repository.
    let out = d.run(&["git", "bundle", src.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("manifests"), "{}", stderr(&out));

    fs::write(src.join("deploy.yaml"), "replicas: 3\n").unwrap();
    git(&src, &["add", "."]);
    git(&src, &["commit", "-qm", "first"]);
    git(&src, &["tag", "v1"]);
    git(&src, &["checkout", "-qb", "dr-region"]);
    fs::write(src.join("deploy.yaml"), "replicas: 1\n").unwrap();
    git(&src, &["commit", "-qam", "dr"]);
    git(&src, &["checkout", "-q", "main"]);
    let snap = d.json(&["git", "bundle", src.to_str().unwrap()]);
    assert_eq!(snap["kind"], "git");

    let refs = |p: &Path| git(p, &["for-each-ref", "--format=%(objectname) %(refname)"]);
    let work = dir.path().join("restored");
    let report = d.json(&["git", "restore", "latest", "--to", work.to_str().unwrap()]);
    assert_eq!(report["refs"], 3, "{report}");
    assert_eq!(refs(&work), refs(&src));
    assert_eq!(
        fs::read_to_string(work.join("deploy.yaml")).unwrap(),
        "replicas: 3\n"
    );
    assert!(
        git(&work, &["status", "--porcelain"]).is_empty(),
        "a clean working tree"
    );
    let bare = dir.path().join("server.git");
    d.json(&[
        "git",
        "restore",
        "latest",
        "--to",
        bare.to_str().unwrap(),
        "--bare",
    ]);
    assert_eq!(refs(&bare), refs(&src));
    // Not over an existing repository.
    let out = d.run(&["git", "restore", "latest", "--to", work.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
}
