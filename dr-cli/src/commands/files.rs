//! `drkit backup-files` and `drkit restore-files`.

use std::fmt::Write as _;

use dr_core::files::{
    backup_files, restore_files, BackupFilesOptions, FilesMetadata, RestoreFilesOptions, KIND_FILES,
};
use dr_core::repo::Pick;
use dr_core::Result;
use serde::Serialize;

use crate::args::{BackupFilesArgs, Cli, GitCommand, RestoreFilesArgs};
use crate::output::{bytes, Output};

/// What `drkit backup-files --json` prints: the snapshot and what the walk saw.
#[derive(Serialize)]
struct Backed {
    #[serde(flatten)]
    snapshot: dr_core::repo::SnapshotSummary,
}

/// Backs up files and folders.
pub async fn backup(cli: &Cli, a: &BackupFilesArgs, out: Output) -> Result<u8> {
    let options = BackupFilesOptions {
        paths: a.paths.clone(),
        exclude: a.exclude.clone(),
        one_file_system: a.one_file_system,
        tags: a.tags.iter().cloned().collect(),
    };
    let repo = super::open_repo(cli).await?;
    let shown: Vec<String> = a.paths.iter().map(|p| p.display().to_string()).collect();
    out.note(&format!(
        "backing up {} to {}",
        shown.join(", "),
        repo.store().url()
    ));
    let bar = out.progress(None);
    let snap = backup_files(&repo, &options, bar.clone()).await;
    bar.finish();
    let snap = snap?;
    let meta: FilesMetadata = serde_json::from_value(snap.metadata.clone()).unwrap_or_default();
    let s = Backed {
        snapshot: snap.summary(),
    };
    out.emit(&s, || {
        let st = snap.stats;
        let mut t = format!(
            "snapshot {}\n  {}\n  {} of files ({} holding data), {} new in {} new chunks of {}, took {:.1}s",
            snap.id,
            entries(meta.files, meta.dirs, meta.symlinks, meta.hard_links, meta.special, meta.excluded),
            bytes(meta.bytes),
            bytes(meta.data_bytes),
            bytes(st.new_bytes),
            st.new_chunks,
            st.chunks,
            snap.duration().as_secs_f64(),
        );
        warnings(&mut t, &meta.warnings);
        t
    });
    Ok(0)
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "3 files, 1 folder, …", leaving out kinds there are none of (files and folders always).
fn entries(
    files: u64,
    dirs: u64,
    symlinks: u64,
    links: u64,
    special: u64,
    excluded: u64,
) -> String {
    let mut parts = vec![
        plural(files, "file", "files"),
        plural(dirs, "folder", "folders"),
    ];
    for (n, one, many) in [
        (symlinks, "symbolic link", "symbolic links"),
        (links, "hard link", "hard links"),
        (special, "FIFO or device", "FIFOs and devices"),
    ] {
        if n > 0 {
            parts.push(plural(n, one, many));
        }
    }
    let mut s = parts.join(", ");
    if excluded > 0 {
        let _ = write!(s, " ({excluded} excluded)");
    }
    s
}

fn warnings(t: &mut String, w: &dr_core::files::Warnings) {
    if w.count == 0 {
        return;
    }
    let _ = write!(t, "\n  {}:", plural(w.count, "warning", "warnings"));
    for line in &w.first {
        let _ = write!(t, "\n    {line}");
    }
    if w.count > w.first.len() as u64 {
        let _ = write!(t, "\n    … and {} more", w.count - w.first.len() as u64);
    }
}

/// Restores a files snapshot into a folder.
pub async fn restore(cli: &Cli, a: &RestoreFilesArgs, out: Output) -> Result<u8> {
    let repo = super::open_repo(cli).await?;
    let pick = Pick {
        snapshot: a.snapshot.as_str().into(),
        source: a.source.clone(),
        before: a.before,
        tags: a.tags.iter().cloned().collect(),
        random_within: None,
    };
    let snap = repo.pick(&pick, KIND_FILES, None).await?;
    let options = RestoreFilesOptions {
        to: a.to.clone(),
        paths: a.paths.clone(),
        overwrite: a.overwrite,
    };
    out.note(&format!(
        "restoring snapshot {} (of {}) into {}",
        snap.id,
        snap.source,
        a.to.display()
    ));
    let total = snap.file(dr_core::files::DATA_FILE).map(|f| f.size).ok();
    let bar = out.progress(total);
    let report = restore_files(&repo, &snap, &options, bar.clone()).await;
    bar.finish();
    let report = report?;
    out.emit(&report, || {
        let mut t = format!(
            "restored snapshot {} into {}\n  {} ({}) in {:.1}s",
            report.snapshot,
            report.to,
            entries(
                report.files,
                report.dirs,
                report.symlinks,
                report.hard_links,
                report.special,
                0
            ),
            bytes(report.bytes),
            report.seconds
        );
        if !report.owners_restored {
            t.push_str(
                "\n  owners not restored (not running as root): the files belong to this user",
            );
        }
        warnings(&mut t, &report.warnings);
        t
    });
    Ok(if report.warnings.count > 0 { 3 } else { 0 })
}

/// `drkit git bundle|restore`.
pub async fn git(cli: &Cli, c: &GitCommand, out: Output) -> Result<u8> {
    use dr_core::files::git::{
        git_bundle, git_restore, GitBundleOptions, GitMetadata, GitRestoreOptions, KIND_GIT,
    };
    let repo = super::open_repo(cli).await?;
    match c {
        GitCommand::Bundle { path, tags } => {
            let options = GitBundleOptions {
                path: path.clone(),
                tags: tags.iter().cloned().collect(),
            };
            out.note(&format!(
                "bundling {} to {}",
                path.display(),
                repo.store().url()
            ));
            let bar = out.progress(None);
            let snap = git_bundle(&repo, &options, bar.clone()).await;
            bar.finish();
            let snap = snap?;
            let meta: GitMetadata =
                serde_json::from_value(snap.metadata.clone()).unwrap_or_default();
            let s = snap.summary();
            out.emit(&s, || {
                format!(
                    "snapshot {}\n  {} refs, {} bundle, {} new",
                    s.id,
                    meta.refs.len(),
                    bytes(s.stats.raw_bytes),
                    bytes(s.stats.new_bytes)
                )
            });
        }
        GitCommand::Restore {
            snapshot,
            to,
            bare,
            source,
        } => {
            let pick = Pick {
                snapshot: snapshot.as_str().into(),
                source: source.clone(),
                ..Pick::default()
            };
            let snap = repo.pick(&pick, KIND_GIT, None).await?;
            let options = GitRestoreOptions {
                to: to.clone(),
                bare: *bare,
            };
            let report = git_restore(&repo, &snap, &options).await?;
            out.emit(&report, || {
                format!(
                    "restored snapshot {} into {}: {} refs, each naming the commit it named",
                    report.snapshot, report.to, report.refs
                )
            });
        }
    }
    Ok(0)
}
