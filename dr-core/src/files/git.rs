//! A Git repository as a snapshot of kind `git`: `git bundle create - --all` streamed
//! through the chunker; restored with `git clone` from the bundle (every branch and tag).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::progress::Progress;
use crate::repo::{Repository, Snapshot, SnapshotKind};
use crate::{err, Error, Result};

/// Snapshot kind of Git bundles.
pub const KIND_GIT: &str = "git";
/// The bundle inside a `git` snapshot.
pub const BUNDLE_FILE: &str = "repo.bundle";

/// How to bundle a repository: `drkit git bundle`, Python and `git.bundle`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GitBundleOptions {
    /// The repository: a working tree or a bare repository.
    pub path: PathBuf,
    /// Tags for the manifest.
    pub tags: std::collections::BTreeMap<String, String>,
}

/// What a `git` snapshot records.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GitMetadata {
    /// The repository, absolute.
    pub repository: String,
    /// Every ref and the commit it names, as `git bundle list-heads` reads them back.
    pub refs: std::collections::BTreeMap<String, String>,
    /// `git --version` of the machine that made it.
    pub git_version: String,
}

fn git(dir: Option<&Path>) -> Command {
    let mut c = Command::new("git");
    if let Some(d) = dir {
        c.arg("-C").arg(d);
    }
    // Never ask for anything, never read the user's hooks or pager.
    c.env("GIT_TERMINAL_PROMPT", "0").env("GIT_PAGER", "cat");
    c.stdin(Stdio::null()).kill_on_drop(true);
    c
}

async fn run_git(dir: Option<&Path>, args: &[&str], what: &str) -> Result<String> {
    let mut c = git(dir);
    c.args(args);
    output(c, what).await
}

async fn output(mut c: Command, what: &str) -> Result<String> {
    let out = c.output().await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            err!(
                NotFound,
                "git is not installed (needed to {what}); install it (apt-get install git)"
            )
        } else {
            Error::io(format!("running git to {what}"), e)
        }
    })?;
    if !out.status.success() {
        return Err(err!(
            External,
            "git failed to {what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Bundles the repository at `options.path` (every ref) into `repo`.
pub async fn git_bundle(
    repo: &Repository,
    options: &GitBundleOptions,
    progress: Arc<dyn Progress>,
) -> Result<Snapshot> {
    let path =
        std::path::absolute(&options.path).map_err(|e| Error::io(options.path.display(), e))?;
    let top = run_git(
        Some(&path),
        &["rev-parse", "--absolute-git-dir"],
        &format!("read {} as a Git repository", path.display()),
    )
    .await?;
    let git_dir = PathBuf::from(top.trim());
    // The repository's own folder, however deep inside it `path` is: one source per
    // repository.
    let path = match run_git(
        Some(&path),
        &["rev-parse", "--show-toplevel"],
        "find the repository's top folder",
    )
    .await
    {
        Ok(top) if !top.trim().is_empty() => PathBuf::from(top.trim()),
        _ => git_dir.clone(),
    };
    let refs_now = run_git(
        Some(&git_dir),
        &["for-each-ref", "--count=1", "--format=%(refname)"],
        "list its refs",
    )
    .await?;
    if refs_now.trim().is_empty() {
        return Err(err!(
            InvalidInput,
            "{} has no commits to back up yet",
            path.display()
        ));
    }
    let version = run_git(None, &["--version"], "read its version").await?;

    let mut writer = repo.begin_snapshot(
        SnapshotKind::new(KIND_GIT),
        &format!("{}:{}", crate::lock::hostname(), path.display()),
    );
    for (k, v) in &options.tags {
        writer.tag(k, v);
    }
    writer.set_progress(progress);
    let mut child = git(Some(&git_dir))
        .args(["bundle", "create", "--quiet", "-", "--all"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("running git bundle", e))?;
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let errors = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let stored = writer.add_file(BUNDLE_FILE, stdout).await.map(|f| f.size);
    let status = child
        .wait()
        .await
        .map_err(|e| Error::io("running git bundle", e))?;
    let errors = errors.await.unwrap_or_default();
    if !status.success() {
        return Err(err!(
            External,
            "git bundle of {} failed: {}",
            path.display(),
            errors.trim()
        ));
    }
    let size = stored?;
    if size == 0 {
        return Err(err!(
            InvalidInput,
            "{} has no commits to bundle",
            path.display()
        ));
    }
    let heads = run_git(
        Some(&git_dir),
        &["for-each-ref", "--format=%(objectname) %(refname)"],
        "list its refs",
    )
    .await?;
    let refs = heads
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, name)| (name.to_owned(), id.to_owned()))
        .collect();
    let meta = GitMetadata {
        repository: path.display().to_string(),
        refs,
        git_version: version.trim().to_owned(),
    };
    writer
        .commit(serde_json::to_value(&meta).expect("metadata serializes"))
        .await
}

/// How to restore a bundle: `drkit git restore`, Python and `git.restore`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GitRestoreOptions {
    /// Where the repository goes: must be missing or empty.
    pub to: PathBuf,
    /// A bare repository with every ref as it was (`git clone --mirror`), for a Git
    /// server; otherwise a working tree with the default branch checked out.
    pub bare: bool,
}

/// What a restore made.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GitRestoreReport {
    /// The snapshot.
    pub snapshot: String,
    /// The repository made.
    pub to: String,
    /// Refs the snapshot recorded.
    pub refs: usize,
    /// Refs of them the restored repository has, naming the same commit.
    pub refs_matching: usize,
}

/// Restores a `git` snapshot by cloning its bundle into `options.to`.
pub async fn git_restore(
    repo: &Repository,
    snapshot: &Snapshot,
    options: &GitRestoreOptions,
) -> Result<GitRestoreReport> {
    if snapshot.kind.as_str() != KIND_GIT {
        return Err(err!(
            InvalidInput,
            "snapshot {} is a {} snapshot, not a Git bundle",
            snapshot.id,
            snapshot.kind
        ));
    }
    let to = std::path::absolute(&options.to).map_err(|e| Error::io(options.to.display(), e))?;
    check_target(&to)?;
    let meta: GitMetadata = serde_json::from_value(snapshot.metadata.clone()).unwrap_or_default();
    // git clone reads a bundle from a file: spool it beside the target.
    let parent = to.parent().unwrap_or(Path::new("/")).to_path_buf();
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(parent.display(), e))?;
    let spool = tempfile::Builder::new()
        .prefix(".drkit-bundle-")
        .tempfile_in(&parent)
        .map_err(|e| Error::io(format!("a spool file in {}", parent.display()), e))?;
    let mut file =
        tokio::fs::File::from_std(spool.reopen().map_err(|e| Error::io("the spool file", e))?);
    repo.restore_file(
        snapshot,
        BUNDLE_FILE,
        &mut file,
        &crate::progress::NoProgress,
    )
    .await?;
    drop(file);
    // Every ref as it was: a mirror clone, then, for a working tree, that mirror as its
    // `.git` with the default branch checked out.
    let git_dir = if options.bare {
        to.clone()
    } else {
        to.join(".git")
    };
    let mut clone = git(None);
    clone
        .args(["clone", "--quiet", "--mirror"])
        .arg(spool.path())
        .arg(&git_dir);
    output(clone, &format!("clone the bundle into {}", to.display())).await?;
    // The clone's origin is the spool file, gone in a moment.
    let mut forget = git(Some(&git_dir));
    forget.args(["remote", "remove", "origin"]);
    output(forget, "forget the spool file").await?;
    if !options.bare {
        let mut unbare = git(Some(&git_dir));
        unbare.args(["config", "--bool", "core.bare", "false"]);
        output(unbare, "make it a working tree").await?;
        let mut checkout = git(Some(&to));
        checkout.args(["reset", "--quiet", "--hard"]);
        output(checkout, "check out its default branch").await?;
    }
    let heads = run_git(
        Some(&git_dir),
        &["for-each-ref", "--format=%(objectname) %(refname)"],
        "list the restored refs",
    )
    .await?;
    let have: std::collections::BTreeMap<String, String> = heads
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, name)| (name.to_owned(), id.to_owned()))
        .collect();
    let missing: Vec<&str> = meta
        .refs
        .iter()
        .filter(|(name, id)| have.get(*name) != Some(id))
        .map(|(name, _)| name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(err!(
            Corrupt,
            "the repository restored into {} lacks refs the snapshot recorded: {}",
            to.display(),
            missing.join(", ")
        ));
    }
    let refs_matching = meta.refs.len();
    Ok(GitRestoreReport {
        snapshot: snapshot.id.to_string(),
        to: to.display().to_string(),
        refs: meta.refs.len(),
        refs_matching,
    })
}

/// Refuses a target that is a file or a folder that is not empty: a Git restore only
/// makes a new repository.
///
/// # Errors
/// `Conflict` naming the target.
pub fn check_target(to: &std::path::Path) -> Result<()> {
    if std::fs::symlink_metadata(to).is_ok_and(|m| !m.is_dir()) {
        return Err(err!(
            Conflict,
            "{} exists and is not a folder; restore the repository into a new or empty folder",
            to.display()
        ));
    }
    if std::fs::read_dir(to).is_ok_and(|mut d| d.next().is_some()) {
        return Err(err!(
            Conflict,
            "{} is not empty; restore the repository into a new or empty folder",
            to.display()
        ));
    }
    Ok(())
}
