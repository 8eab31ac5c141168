//! Files and folders as snapshots of kind `files`: what `tar` keeps, through the same
//! chunker as every other snapshot (deduplicated, compressed, encrypted; kept, verified
//! and copied like them).
//!
//! A snapshot holds two streams: `data`, the contents of every regular file one after
//! another (a sparse file's holes left out), and `tree`, one record per entry (see
//! [`format`]): path as raw bytes, type, mode, owner, mtime, a file's extents, a symbolic
//! link's target, a hard link's first path. Contents and metadata apart, a `chmod` or a
//! `touch` does not move the data's chunk boundaries. The walk is one pass in name order
//! (so unchanged trees chunk the same), streamed: memory does not grow with the number of
//! files, except for the paths of files with several hard links.

pub mod actions;
mod backup;
mod format;
pub mod git;

pub(crate) use format::unwrap_io as unwrap_io_error;
mod restore;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError};

use serde::{Deserialize, Serialize};

use crate::progress::Progress;
use crate::repo::{Repository, Snapshot, SnapshotKind};
use crate::{err, Error, Result};

/// Snapshot kind of file trees.
pub const KIND_FILES: &str = "files";
/// The stream of file contents.
pub const DATA_FILE: &str = "data";
/// The stream of entries.
pub const TREE_FILE: &str = "tree";

const WARNINGS_KEPT: usize = 100;

/// Things that did not stop the work but that a user must see: a file removed or changed
/// while read, a socket skipped, a hard link whose target was not selected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Warnings {
    /// How many there were.
    pub count: u64,
    /// The first hundred.
    pub first: Vec<String>,
}

impl Warnings {
    pub(crate) fn push(&mut self, w: String) {
        tracing::warn!("{w}");
        self.count += 1;
        if self.first.len() < WARNINGS_KEPT {
            self.first.push(w);
        }
    }
}

/// What a `files` snapshot holds, in its manifest's metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FilesMetadata {
    /// The paths backed up, absolute.
    pub roots: Vec<String>,
    /// Regular files.
    pub files: u64,
    /// Folders, the roots included.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Further names of files already stored (hard links).
    pub hard_links: u64,
    /// FIFOs and devices.
    pub special: u64,
    /// Entries `exclude` left out (a folder counts once).
    pub excluded: u64,
    /// Size of the regular files.
    pub bytes: u64,
    /// Bytes of them that hold data (less than `bytes` when files are sparse).
    pub data_bytes: u64,
    /// What the walk noticed.
    pub warnings: Warnings,
}

/// How to back up files: the same options from `drkit backup-files`, Python and a
/// runbook's `files.backup` step.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupFilesOptions {
    /// Files and folders to back up. One folder is stored as the snapshot's root; several
    /// paths are stored each under its own name.
    pub paths: Vec<PathBuf>,
    /// Glob patterns to leave out: without `/` they match a name anywhere (`*.log`,
    /// `node_modules`), with `/` a path from the root (`media/cache/*`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Do not cross into other file systems (mounts inside the folders).
    #[serde(default)]
    pub one_file_system: bool,
    /// Tags for the manifest.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Backs up `options.paths` into `repo` as one snapshot of kind `files`.
///
/// Nothing is visible until the manifest is written, so an interrupted backup leaves
/// only chunks that the next backup reuses or prune removes.
pub async fn backup_files(
    repo: &Repository,
    options: &BackupFilesOptions,
    progress: Arc<dyn Progress>,
) -> Result<Snapshot> {
    let roots = backup::roots(&options.paths)?;
    let excludes = backup::excludes(&options.exclude)?;
    let shown: Vec<String> = roots.iter().map(|(p, _)| p.display().to_string()).collect();
    let source = format!("{}:{}", crate::lock::hostname(), shown.join(","));
    let (reader, outcome) = backup::TreeReader::new(
        roots,
        excludes,
        options.one_file_system,
        u64::from(repo.config().chunker.min),
    )?;

    let mut writer = repo.begin_snapshot(SnapshotKind::new(KIND_FILES), &source);
    for (k, v) in &options.tags {
        writer.tag(k, v);
    }
    writer.set_progress(progress.clone());
    progress.phase("files");
    let stored = writer.add_file_segmented(DATA_FILE, reader).await;
    let mut done = std::mem::take(&mut *outcome.lock().unwrap_or_else(PoisonError::into_inner));
    if let Some(e) = done.error.take() {
        return Err(e.context("backing up files"));
    }
    stored?;
    let (tree, _) = done
        .tree
        .take()
        .ok_or_else(|| err!(Io, "the walk ended without its file list"))?;
    progress.phase("file list");
    writer.add_file_blocking(TREE_FILE, tree).await?;
    let mut meta = done.meta;
    meta.roots = shown;
    progress.phase("commit");
    writer
        .commit(serde_json::to_value(&meta).expect("metadata serializes"))
        .await
}

/// How to restore files: the same options from `drkit restore-files`, Python and a
/// runbook's `files.restore` step.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RestoreFilesOptions {
    /// The folder to restore into; made when missing. It must be empty unless
    /// `overwrite`.
    pub to: PathBuf,
    /// Only these paths inside the snapshot (and what is under them), as the snapshot
    /// stores them: relative to its root.
    pub paths: Vec<String>,
    /// Restore into a folder that is not empty, replacing what the snapshot holds too
    /// (files not in the snapshot stay).
    pub overwrite: bool,
}

/// What a restore wrote.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RestoreFilesReport {
    /// The snapshot restored.
    pub snapshot: String,
    /// Where.
    pub to: String,
    /// Regular files written.
    pub files: u64,
    /// Folders made or updated.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Hard links.
    pub hard_links: u64,
    /// FIFOs and devices.
    pub special: u64,
    /// Size of the files written.
    pub bytes: u64,
    /// Whether owners were restored (only as root; otherwise files belong to this user).
    pub owners_restored: bool,
    /// What could not be restored as stored, and why.
    pub warnings: Warnings,
    /// How long it took.
    pub seconds: f64,
}

/// Restores `snapshot` (of kind `files`) into `options.to`.
///
/// An interrupted restore leaves what it wrote so far; run it again with `overwrite`.
pub async fn restore_files(
    repo: &Repository,
    snapshot: &Snapshot,
    options: &RestoreFilesOptions,
    progress: Arc<dyn Progress>,
) -> Result<RestoreFilesReport> {
    if snapshot.kind.as_str() != KIND_FILES {
        return Err(err!(
            InvalidInput,
            "snapshot {} is a {} snapshot, not files; restore it with the command for its kind",
            snapshot.id,
            snapshot.kind
        ));
    }
    let started = std::time::Instant::now();
    let to = prepare_target(&options.to, options.overwrite)?;
    let select: Vec<Vec<u8>> = options
        .paths
        .iter()
        .map(|p| {
            p.trim_start_matches("./")
                .trim_matches('/')
                .as_bytes()
                .to_vec()
        })
        .collect();
    let preflight = {
        let tree = blocking_snapshot_reader(repo, snapshot, TREE_FILE)?;
        let (select, to, overwrite) = (select.clone(), to.clone(), options.overwrite);
        tokio::task::spawn_blocking(move || restore::preflight(tree, &select, &to, overwrite))
            .await
            .map_err(|e| err!(Io, "the restore worker failed: {e}"))??
    };
    let tree = blocking_snapshot_reader(repo, snapshot, TREE_FILE)?;
    let data = blocking_snapshot_reader(repo, snapshot, DATA_FILE)?;
    let as_root = rustix::process::geteuid().is_root();
    progress.phase("restore");
    let target = to.clone();
    let (written, warnings) = tokio::task::spawn_blocking(move || {
        let mut r = restore::Restorer::new(target, select, as_root, &*progress).with(preflight);
        r.run(tree, data)?;
        Ok::<_, Error>((r.written, r.warnings))
    })
    .await
    .map_err(|e| err!(Io, "the restore worker failed: {e}"))?
    .map_err(|e| {
        e.context(format!(
            "restoring snapshot {} into {}",
            snapshot.id,
            to.display()
        ))
    })?;
    Ok(RestoreFilesReport {
        snapshot: snapshot.id.to_string(),
        to: to.display().to_string(),
        files: written.files,
        dirs: written.dirs,
        symlinks: written.symlinks,
        hard_links: written.hard_links,
        special: written.special,
        bytes: written.bytes,
        owners_restored: as_root,
        warnings,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The restore folder: made when missing, refused when it holds anything (unless
/// `overwrite`), absolute.
fn prepare_target(to: &std::path::Path, overwrite: bool) -> Result<PathBuf> {
    if to.as_os_str().is_empty() {
        return Err(err!(InvalidInput, "name the folder to restore into (`to`)"));
    }
    let to = std::path::absolute(to).map_err(|e| Error::io(to.display(), e))?;
    match std::fs::symlink_metadata(&to) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&to).map_err(|e| Error::io(to.display(), e))?;
        }
        Err(e) => return Err(Error::io(to.display(), e)),
        Ok(m) if !m.is_dir() => {
            return Err(err!(
                Conflict,
                "{} exists and is not a folder; restore into a folder",
                to.display()
            ))
        }
        Ok(_) if overwrite => {}
        Ok(_) => {
            let mut entries = std::fs::read_dir(&to).map_err(|e| Error::io(to.display(), e))?;
            if let Some(first) = entries.next() {
                let first = first.map_err(|e| Error::io(to.display(), e))?;
                let more = entries.take(1000).count();
                let more = match more {
                    0 => String::new(),
                    1000 => " and over 1,000 more".to_owned(),
                    n => format!(" and {n} more"),
                };
                return Err(err!(
                    Conflict,
                    "{} is not empty (it holds {:?}{more}); restore into an empty or new folder, or overwrite (--overwrite; `overwrite: true` in a runbook) to replace what the snapshot holds",
                    to.display(),
                    first.file_name()
                ));
            }
        }
    }
    Ok(to)
}

/// A blocking reader over one stream of a snapshot; a damaged chunk comes back out of
/// it as the repository's own error.
pub(crate) fn blocking_snapshot_reader(
    repo: &Repository,
    snapshot: &Snapshot,
    name: &str,
) -> Result<impl std::io::Read + Send + 'static> {
    use futures::TryStreamExt;
    let stream = repo
        .read_file(snapshot, name)?
        .map_err(std::io::Error::other);
    Ok(std::io::BufReader::with_capacity(
        1 << 16,
        tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream)),
    ))
}
