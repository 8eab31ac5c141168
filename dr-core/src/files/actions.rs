//! The runbook actions of files: `files.backup`, `files.restore`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{BackupFilesOptions, RestoreFilesOptions, RestoreFilesReport, KIND_FILES};
use crate::progress::NoProgress;
use crate::repo::{Pick, SnapshotRef};
use crate::runbook::action::{Outcome, Registry, StepContext};
use crate::runbook::{ParamError, TypedAction};
use crate::Result;

/// Adds the files actions to `registry`.
pub fn register(registry: &mut Registry) {
    registry
        .typed(FilesBackup)
        .typed(FilesRestore)
        .typed(GitBundle)
        .typed(GitRestore);
}

/// What `files.backup` stored.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct FilesStored {
    /// The snapshot's id.
    pub snapshot: String,
    /// Regular files in it.
    pub files: u64,
    /// Their size.
    pub bytes: u64,
    /// Bytes uploaded (what the repository did not have yet).
    pub new_bytes: u64,
    /// Files removed, changed or skipped while read.
    pub warnings: super::Warnings,
}

struct FilesBackup;

#[async_trait]
impl TypedAction for FilesBackup {
    type Params = BackupFilesOptions;
    type Outputs = FilesStored;
    const NAME: &'static str = "files.backup";
    const SUMMARY: &'static str = "Backs up files and folders into the run's repository (the options of `drkit backup-files`).";
    const IDEMPOTENT: bool = true;

    fn check(&self, p: &BackupFilesOptions) -> std::result::Result<(), ParamError> {
        if p.paths.is_empty() {
            return Err(ParamError::at("paths", "name at least one file or folder"));
        }
        super::backup::excludes(&p.exclude)
            .map(|_| ())
            .map_err(|e| ParamError::at("exclude", e.message()))
    }

    async fn plan(&self, _: &StepContext, p: BackupFilesOptions) -> Result<Vec<String>> {
        let paths: Vec<String> = p
            .paths
            .iter()
            .map(|p| match std::fs::symlink_metadata(p) {
                Ok(_) => p.display().to_string(),
                Err(_) => format!("{} (missing now)", p.display()),
            })
            .collect();
        let leaving_out = if p.exclude.is_empty() {
            String::new()
        } else {
            format!(", leaving out {}", p.exclude.join(", "))
        };
        Ok(vec![format!(
            "backs up {} into the repository{leaving_out}",
            paths.join(", ")
        )])
    }

    async fn run(&self, ctx: &StepContext, p: BackupFilesOptions) -> Result<Outcome<FilesStored>> {
        let snap = super::backup_files(ctx.repository()?, &p, Arc::new(NoProgress)).await?;
        let meta: super::FilesMetadata =
            serde_json::from_value(snap.metadata.clone()).unwrap_or_default();
        Ok(Outcome::Done(FilesStored {
            snapshot: snap.id.to_string(),
            files: meta.files,
            bytes: meta.bytes,
            new_bytes: snap.stats.new_bytes,
            warnings: meta.warnings,
        }))
    }
}

/// `files.restore`'s parameters: which snapshot, and the options of `drkit restore-files`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesRestoreParams {
    /// `latest` (the newest files snapshot of `source`, or of the only source), an id or
    /// a unique prefix.
    #[serde(default)]
    pub snapshot: SnapshotRef,
    /// With `latest`: the source, as `drkit snapshots` shows it (`host:/var/app/data`)
    /// or the name of its last folder (`data`).
    #[serde(default)]
    pub source: Option<String>,
    /// With `latest`: the newest taken before this moment.
    #[serde(default)]
    pub before: Option<jiff::Timestamp>,
    /// With `latest`: only snapshots with these tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The folder to restore into; made when missing, refused when not empty unless
    /// `overwrite`.
    pub to: PathBuf,
    /// Only these paths inside the snapshot.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Restore into a folder that is not empty.
    #[serde(default)]
    pub overwrite: bool,
}

impl FilesRestoreParams {
    fn pick(&self) -> Pick {
        Pick {
            snapshot: self.snapshot.clone(),
            source: self.source.clone(),
            before: self.before,
            tags: self.tags.clone(),
            random_within: None,
        }
    }

    fn options(&self) -> RestoreFilesOptions {
        RestoreFilesOptions {
            to: self.to.clone(),
            paths: self.paths.clone(),
            overwrite: self.overwrite,
        }
    }
}

struct FilesRestore;

#[async_trait]
impl TypedAction for FilesRestore {
    type Params = FilesRestoreParams;
    type Outputs = RestoreFilesReport;
    const NAME: &'static str = "files.restore";
    const SUMMARY: &'static str = "Restores a files snapshot of the run's repository into a folder (the options of `drkit restore-files`).";
    const IDEMPOTENT: bool = false;

    fn idempotent(&self, p: &FilesRestoreParams) -> bool {
        // Writing the same snapshot over what it wrote gives the same tree.
        p.overwrite
    }

    async fn plan(&self, ctx: &StepContext, p: FilesRestoreParams) -> Result<Vec<String>> {
        let into = p.to.display();
        let Ok(repo) = ctx.repository() else {
            return Ok(vec![format!("restores files into {into}")]);
        };
        let state = match std::fs::symlink_metadata(&p.to) {
            Ok(m) if !m.is_dir() => {
                return Err(crate::err!(Conflict, "{into} exists and is not a folder"))
            }
            Ok(_) => match std::fs::read_dir(&p.to).map(|mut d| d.next().is_some()) {
                Ok(true) if !p.overwrite => {
                    "not empty now: the step will refuse it without overwrite"
                }
                Ok(true) => "not empty: replaces what the snapshot holds",
                _ => "empty",
            },
            Err(_) => "made by the step",
        };
        match repo.pick(&p.pick(), KIND_FILES, None).await {
            Ok(s) => {
                let meta: super::FilesMetadata =
                    serde_json::from_value(s.metadata.clone()).unwrap_or_default();
                Ok(vec![format!(
                    "restores snapshot {} (of {}, {}: {} files, {} bytes) into {into} ({state})",
                    s.id, s.source, s.finished_at, meta.files, meta.bytes
                )])
            }
            Err(e) if e.kind() == crate::ErrorKind::NotFound => Ok(vec![format!(
                "restores files into {into} ({state}): the snapshot an earlier step takes (none in the repository now)"
            )]),
            Err(e) => Err(e),
        }
    }

    async fn run(
        &self,
        ctx: &StepContext,
        p: FilesRestoreParams,
    ) -> Result<Outcome<RestoreFilesReport>> {
        let repo = ctx.repository()?;
        let snap = repo.pick(&p.pick(), KIND_FILES, None).await?;
        Ok(Outcome::Done(
            super::restore_files(repo, &snap, &p.options(), Arc::new(NoProgress)).await?,
        ))
    }
}

/// What `git.bundle` stored.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct GitStored {
    /// The snapshot's id.
    pub snapshot: String,
    /// Refs in the bundle.
    pub refs: usize,
    /// Bytes uploaded.
    pub new_bytes: u64,
}

struct GitBundle;

#[async_trait]
impl TypedAction for GitBundle {
    type Params = super::git::GitBundleOptions;
    type Outputs = GitStored;
    const NAME: &'static str = "git.bundle";
    const SUMMARY: &'static str = "Bundles a Git repository (`git bundle create --all`: every branch and tag) into the run's repository.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: super::git::GitBundleOptions) -> Result<Vec<String>> {
        Ok(vec![format!(
            "bundles the Git repository {} into the repository",
            p.path.display()
        )])
    }

    async fn run(
        &self,
        ctx: &StepContext,
        p: super::git::GitBundleOptions,
    ) -> Result<Outcome<GitStored>> {
        let snap = super::git::git_bundle(ctx.repository()?, &p, Arc::new(NoProgress)).await?;
        let meta: super::git::GitMetadata =
            serde_json::from_value(snap.metadata.clone()).unwrap_or_default();
        Ok(Outcome::Done(GitStored {
            snapshot: snap.id.to_string(),
            refs: meta.refs.len(),
            new_bytes: snap.stats.new_bytes,
        }))
    }
}

/// `git.restore`'s parameters.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GitRestoreParams {
    /// `latest` (the newest bundle of `source`, or of the only source), an id or a prefix.
    #[serde(default)]
    pub snapshot: SnapshotRef,
    /// With `latest`: the repository's path as `drkit snapshots` shows it, or its last
    /// folder's name.
    #[serde(default)]
    pub source: Option<String>,
    /// Where the repository goes: missing or empty.
    pub to: PathBuf,
    /// A bare mirror (for a Git server) instead of a working tree.
    #[serde(default)]
    pub bare: bool,
}

struct GitRestore;

#[async_trait]
impl TypedAction for GitRestore {
    type Params = GitRestoreParams;
    type Outputs = super::git::GitRestoreReport;
    const NAME: &'static str = "git.restore";
    const SUMMARY: &'static str =
        "Clones a Git bundle of the run's repository into a new folder, every ref as it was.";
    const IDEMPOTENT: bool = false;

    async fn plan(&self, _: &StepContext, p: GitRestoreParams) -> Result<Vec<String>> {
        super::git::check_target(&p.to)?;
        Ok(vec![format!(
            "clones Git bundle {} into {}{}",
            p.snapshot,
            p.to.display(),
            if p.bare { " (bare)" } else { "" }
        )])
    }

    async fn run(
        &self,
        ctx: &StepContext,
        p: GitRestoreParams,
    ) -> Result<Outcome<super::git::GitRestoreReport>> {
        let repo = ctx.repository()?;
        let pick = Pick {
            snapshot: p.snapshot.clone(),
            source: p.source.clone(),
            ..Pick::default()
        };
        let snap = repo.pick(&pick, super::git::KIND_GIT, None).await?;
        let options = super::git::GitRestoreOptions {
            to: p.to,
            bare: p.bare,
        };
        Ok(Outcome::Done(
            super::git::git_restore(repo, &snap, &options).await?,
        ))
    }
}
