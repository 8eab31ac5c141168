//! Files and folders: what a restore gives back is what `tar` would, compared entry by
//! entry with `stat` and contents; a changed file costs its own bytes; bad input is
//! refused naming the fix.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dr_core::files::{backup_files, restore_files, BackupFilesOptions, RestoreFilesOptions};
use dr_core::progress::NoProgress;
use dr_core::repo::{InitOptions, Repository};
use dr_core::store::{BackupStoreExt, DynStore, LocalStore};
use dr_core::ErrorKind;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Deterministic bytes that do not compress: a BLAKE3 keystream.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

fn set_mtime(p: &Path, secs: i64, nanos: i64) {
    let ts = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: nanos,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &rustix::fs::Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

/// A tree with everything `tar` keeps.
fn build_tree(root: &Path) {
    fs::create_dir_all(root.join("sub/deeper")).unwrap();
    fs::create_dir(root.join("empty")).unwrap();
    fs::write(root.join("a.txt"), b"hello\n").unwrap();
    fs::write(root.join("exec.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("exec.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root.join("setuid"), b"x").unwrap();
    fs::write(root.join("big.bin"), noise(1, 3 << 20)).unwrap();
    fs::write(root.join("sub/deeper/small"), noise(2, 1000)).unwrap();
    fs::write(root.join("empty-file"), b"").unwrap();
    // Names that are not UTF-8, hold a newline, or spaces and accents.
    fs::write(root.join(OsStr::from_bytes(b"bad\xffname")), b"latin1").unwrap();
    fs::write(root.join("new\nline"), b"nl").unwrap();
    fs::write(root.join("spaces and ü"), b"u").unwrap();
    // Symbolic links, not followed: relative, dangling, absolute, to a folder.
    std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", root.join("dangling")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("abs")).unwrap();
    std::os::unix::fs::symlink("sub", root.join("dirlink")).unwrap();
    // Hard links across folders.
    fs::write(root.join("hard1"), b"one inode, two names").unwrap();
    fs::hard_link(root.join("hard1"), root.join("sub/hard2")).unwrap();
    // A sparse file: 64 MiB, data at its start and middle, a hole at its end.
    let mut f = fs::File::create(root.join("sparse.img")).unwrap();
    f.write_all(&noise(3, 4096)).unwrap();
    f.seek(SeekFrom::Start(32 << 20)).unwrap();
    f.write_all(&noise(4, 8192)).unwrap();
    f.set_len(64 << 20).unwrap();
    drop(f);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    fs::create_dir(root.join("ro")).unwrap();
    fs::write(root.join("ro/inside"), b"in a read-only folder").unwrap();
    fs::set_permissions(root.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
    fs::set_permissions(root.join("empty"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(root.join("a.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    if is_root() {
        chown(&root.join("a.txt"), 1234, 5678);
        chown(&root.join("link"), 4321, 8765);
        chown(&root.join("empty"), 1000, 1000);
    }
    // After chown, which clears set-user-id.
    fs::set_permissions(root.join("setuid"), fs::Permissions::from_mode(0o4755)).unwrap();
    // Distinct mtimes with nanoseconds, folders last (writing inside one moves it).
    let mut all: Vec<PathBuf> = walk(root).into_iter().map(|(p, _)| p).collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        set_mtime(p, 1_700_000_000 + i as i64 * 1000, 123_456_789 + i as i64);
    }
}

fn walk(root: &Path) -> Vec<(PathBuf, fs::Metadata)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                stack.push(p.clone());
            }
            out.push((p, md));
        }
    }
    out
}

/// Every entry as `stat` and its contents describe it, hard links as groups.
fn describe(root: &Path) -> BTreeMap<Vec<u8>, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut entries = walk(root);
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let rmd = fs::symlink_metadata(root).unwrap();
    out.insert(
        b".".to_vec(),
        format!(
            "root mode {:o} mtime {}.{}",
            rmd.mode(),
            rmd.mtime(),
            rmd.mtime_nsec()
        ),
    );
    for (p, md) in entries {
        let rel = p
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        let ft = md.file_type();
        let what = if ft.is_symlink() {
            format!("symlink -> {}", fs::read_link(&p).unwrap().display())
        } else if ft.is_dir() {
            "dir".to_owned()
        } else if ft.is_file() {
            let content = fs::read(&p).unwrap();
            let link = if md.nlink() > 1 {
                let first = inodes.entry(md.ino()).or_insert_with(|| rel.clone());
                format!(" linked with {:?}", String::from_utf8_lossy(first))
            } else {
                String::new()
            };
            format!(
                "file {} bytes {}{link}",
                md.size(),
                blake3::hash(&content).to_hex()
            )
        } else {
            format!("special {ft:?}")
        };
        // A symbolic link's own mode is not kept by Linux.
        let mode = if ft.is_symlink() { 0 } else { md.mode() };
        out.insert(
            rel,
            format!(
                "{what} mode {mode:o} owner {}:{} mtime {}.{}",
                md.uid(),
                md.gid(),
                md.mtime(),
                md.mtime_nsec()
            ),
        );
    }
    out
}

async fn local_repo(dir: &Path) -> Repository {
    let store: DynStore = Arc::new(LocalStore::new(dir.to_path_buf()));
    Repository::init(store, &InitOptions::unencrypted())
        .await
        .unwrap()
}

fn opts(paths: &[&Path]) -> BackupFilesOptions {
    BackupFilesOptions {
        paths: paths.iter().map(|p| p.to_path_buf()).collect(),
        ..BackupFilesOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_gives_back_what_tar_would() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    build_tree(&src);
    set_mtime(&src, 1_600_000_000, 42);
    let repo = local_repo(&tmp.path().join("repo")).await;
    let snap = backup_files(&repo, &opts(&[&src]), Arc::new(NoProgress))
        .await
        .unwrap();
    let meta: dr_core::files::FilesMetadata =
        serde_json::from_value(snap.metadata.clone()).unwrap();
    assert_eq!(meta.hard_links, 1);
    assert_eq!(meta.symlinks, 4);
    assert_eq!(
        meta.bytes - meta.data_bytes,
        (64 << 20) - 4096 - 8192,
        "holes are not stored"
    );

    let to = tmp.path().join("restored");
    let report = restore_files(
        &repo,
        &snap,
        &RestoreFilesOptions {
            to: to.clone(),
            ..RestoreFilesOptions::default()
        },
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(report.warnings.count, 0, "{:?}", report.warnings);
    assert_eq!(report.owners_restored, is_root());
    let (want, got) = (describe(&src), describe(&to));
    for (k, v) in &want {
        assert_eq!(
            got.get(k),
            Some(v),
            "entry {:?}",
            String::from_utf8_lossy(k)
        );
    }
    assert_eq!(
        want.len(),
        got.len(),
        "extra entries: {:?}",
        got.keys()
            .filter(|k| !want.contains_key(*k))
            .collect::<Vec<_>>()
    );
    // Stored sparsely: the restored image allocates about what it holds, not 64 MiB.
    let sparse = fs::metadata(to.join("sparse.img")).unwrap();
    assert!(
        sparse.blocks() * 512 < 4 << 20,
        "{} bytes allocated",
        sparse.blocks() * 512
    );

    // A folder that is not empty is refused, naming the fix; --overwrite restores again.
    let again = RestoreFilesOptions {
        to: to.clone(),
        ..RestoreFilesOptions::default()
    };
    let e = restore_files(&repo, &snap, &again, Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.message().contains("--overwrite"), "{e}");
    fs::write(to.join("a.txt"), b"changed since").unwrap();
    let overwrite = RestoreFilesOptions {
        overwrite: true,
        ..again
    };
    restore_files(&repo, &snap, &overwrite, Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(describe(&to), want);

    // Part of it: one folder, with its parents.
    let part = tmp.path().join("part");
    let report = restore_files(
        &repo,
        &snap,
        &RestoreFilesOptions {
            to: part.clone(),
            paths: vec!["sub/deeper".into()],
            ..RestoreFilesOptions::default()
        },
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(report.files, 1);
    assert_eq!(
        fs::read(part.join("sub/deeper/small")).unwrap(),
        noise(2, 1000)
    );
    assert!(!part.join("a.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_costs_its_own_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("tree");
    // 100 files of 300 KiB to 1.3 MiB and 2,000 small ones: about 80 MiB.
    for i in 0..100u64 {
        let dir = src.join(format!("d{:02}", i % 10));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(format!("media-{i:03}.bin")),
            noise(i, 300 * 1024 + (i as usize % 10) * 100 * 1024),
        )
        .unwrap();
        for j in 0..20 {
            fs::write(
                dir.join(format!("note-{i:03}-{j:02}.txt")),
                noise(i * 100 + j, 2000),
            )
            .unwrap();
        }
    }
    let repo = local_repo(&tmp.path().join("repo")).await;
    let first = backup_files(&repo, &opts(&[&src]), Arc::new(NoProgress))
        .await
        .unwrap();
    // 1 % of the tree changes: one file in a hundred rewritten.
    let changed = src.join("d05/media-055.bin");
    let size = fs::metadata(&changed).unwrap().len();
    fs::write(&changed, noise(9999, size as usize)).unwrap();
    let second = backup_files(&repo, &opts(&[&src]), Arc::new(NoProgress))
        .await
        .unwrap();
    let total = first.stats.raw_bytes;
    let new = second.stats.new_bytes;
    eprintln!(
        "tree {total} bytes, changed file {size} bytes, second backup stored {new} new bytes"
    );
    assert!(new >= size, "the changed file is stored");
    assert!(
        new < size + size / 2 + 64 * 1024,
        "a second backup after changing one file stores about that file: {new} new bytes for a {size}-byte file"
    );
    // Nothing else was stored twice: restoring the second gives the second tree.
    let to = tmp.path().join("restored");
    restore_files(
        &repo,
        &second,
        &RestoreFilesOptions {
            to: to.clone(),
            ..RestoreFilesOptions::default()
        },
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(describe(&to), describe(&src));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excludes_and_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("app");
    fs::create_dir_all(src.join("cache/x")).unwrap();
    fs::create_dir_all(src.join("media/tmp")).unwrap();
    fs::write(src.join("cache/x/blob"), b"c").unwrap();
    fs::write(src.join("media/tmp/upload.part"), b"p").unwrap();
    fs::write(src.join("media/photo.jpg"), b"jpg").unwrap();
    fs::write(src.join("debug.log"), b"log").unwrap();
    fs::write(src.join("keep.txt"), b"keep").unwrap();
    let repo = local_repo(&tmp.path().join("repo")).await;
    let options = BackupFilesOptions {
        exclude: vec!["cache".into(), "*.log".into(), "media/tmp".into()],
        ..opts(&[&src])
    };
    let snap = backup_files(&repo, &options, Arc::new(NoProgress))
        .await
        .unwrap();
    let to = tmp.path().join("out");
    restore_files(
        &repo,
        &snap,
        &RestoreFilesOptions {
            to: to.clone(),
            ..RestoreFilesOptions::default()
        },
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    let mut names: Vec<String> = walk(&to)
        .into_iter()
        .map(|(p, _)| p.strip_prefix(&to).unwrap().display().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["keep.txt", "media", "media/photo.jpg"]);

    // Two paths with one name, a missing path, a bad glob: refused before anything.
    fs::create_dir_all(tmp.path().join("other/app")).unwrap();
    let e = backup_files(
        &repo,
        &opts(&[&src, &tmp.path().join("other/app")]),
        Arc::new(NoProgress),
    )
    .await
    .unwrap_err();
    assert!(e.message().contains("both be stored as \"app\""), "{e}");
    let e = backup_files(
        &repo,
        &opts(&[&tmp.path().join("nope")]),
        Arc::new(NoProgress),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.message().contains("nope"), "{e}");
    let bad = BackupFilesOptions {
        exclude: vec!["a[".into()],
        ..opts(&[&src])
    };
    let e = backup_files(&repo, &bad, Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert!(e.message().contains("--exclude \"a[\""), "{e}");
    assert_eq!(
        repo.snapshots().await.unwrap().len(),
        1,
        "no snapshot from refused input"
    );

    // A damaged chunk fails the restore naming it; nothing looks restored.
    let chunk = &snap.file("data").unwrap().chunks[0];
    let key = chunk.id.key();
    let mut bytes = repo.store().get_bytes(&key).await.unwrap().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    repo.store()
        .put_bytes(&key, bytes.into(), dr_core::store::PutMode::Overwrite)
        .await
        .unwrap();
    let e = restore_files(
        &repo,
        &snap,
        &RestoreFilesOptions {
            to: tmp.path().join("damaged"),
            ..RestoreFilesOptions::default()
        },
        Arc::new(NoProgress),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(
        e.full_message().contains(&chunk.id.short()),
        "{}",
        e.full_message()
    );
}
