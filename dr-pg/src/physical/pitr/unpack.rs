//! Unpacking a base backup and its tablespaces, and writing the recovery settings.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use dr_core::progress::Progress;
use dr_core::repo::{Repository, Snapshot};
use dr_core::target::PointInTime;
use dr_core::{err, Error, Result};
use tokio::process::Command;

use super::{PitrOptions, Plan};
use crate::cluster::{chown_to_postgres, is_root};
use crate::physical::basebackup::{BaseMetadata, BASE_FILE, MANIFEST_FILE};
use crate::tools::PgTools;

/// Where each tablespace of `meta` goes: its old location, or where a mapping moves it.
pub(super) fn placed_tablespaces(
    meta: &BaseMetadata,
    mapping: &BTreeMap<PathBuf, PathBuf>,
) -> Result<Vec<(crate::Tablespace, PathBuf)>> {
    for from in mapping.keys() {
        if !meta
            .tablespaces
            .iter()
            .any(|t| Path::new(&t.location) == from)
        {
            let known: Vec<&str> = meta
                .tablespaces
                .iter()
                .map(|t| t.location.as_str())
                .collect();
            return Err(err!(
                InvalidInput,
                "--tablespace-mapping names {}, which is no tablespace of this base backup (its tablespaces: {})",
                from.display(),
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            ));
        }
    }
    Ok(meta
        .tablespaces
        .iter()
        .map(|t| {
            let to = mapping
                .get(Path::new(&t.location))
                .map_or_else(|| PathBuf::from(&t.location), Clone::clone);
            (t.clone(), to)
        })
        .collect())
}

pub(super) fn prepare_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir)
            .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        if entries.next().is_some() {
            return Err(err!(
                Conflict,
                "{} is not empty; recover into a new or empty directory (nothing was changed)",
                dir.display()
            ));
        }
    } else {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io(format!("setting permissions of {}", dir.display()), e))
}

pub(super) fn empty_dir(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}

/// Unpacks snapshot file `name` into `dir` with tar.
pub(super) async fn untar(
    repo: &Repository,
    snap: &Snapshot,
    name: &str,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    let mut tar = Command::new("tar");
    tar.args(["-x", "--no-same-owner", "-f", "-", "-C"])
        .arg(dir);
    let mut run = crate::process::spawn(tar, "tar", Stdio::piped(), Stdio::null())?;
    let mut stdin = run.child.stdin.take().expect("stdin is piped");
    let written = repo.restore_file(snap, name, &mut stdin, progress).await;
    drop(stdin);
    let untarred = run.finish().await;
    written.map_err(|e| e.context(format!("unpacking {name} of base backup {}", snap.id)))?;
    untarred?;
    if is_root() {
        chown_to_postgres(dir)?;
    }
    Ok(())
}

/// Unpacks each tablespace into its place and links it from `pg_tblspc`; returns the
/// `tablespace_map` to write once the backup is verified (PostgreSQL recreates the links
/// from it at startup).
pub(super) async fn place_tablespaces(
    repo: &Repository,
    snap: &Snapshot,
    dir: &Path,
    tablespaces: &[(crate::Tablespace, PathBuf)],
    progress: &dyn Progress,
) -> Result<Option<String>> {
    if tablespaces.is_empty() {
        return Ok(None);
    }
    let links = dir.join("pg_tblspc");
    std::fs::create_dir_all(&links)
        .map_err(|e| Error::io(format!("creating {}", links.display()), e))?;
    let mut map = String::new();
    for (t, to) in tablespaces {
        progress.phase(&format!("tablespace {}", t.name));
        untar(repo, snap, &t.file(), to, progress).await?;
        let link = links.join(t.oid.to_string());
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(to, &link)
            .map_err(|e| Error::io(format!("linking {} to {}", link.display(), to.display()), e))?;
        if is_root() {
            let _ = std::process::Command::new("chown")
                .args(["-h", "postgres:postgres"])
                .arg(&link)
                .status();
        }
        let _ = writeln!(map, "{} {}", t.oid, to.display());
    }
    Ok(Some(map))
}

pub(super) async fn unpack_and_configure(
    repo: &Repository,
    snap: &Snapshot,
    plan: &Plan,
    options: &PitrOptions,
    restore_command: &str,
    tablespaces: &[(crate::Tablespace, PathBuf)],
    progress: &dyn Progress,
) -> Result<bool> {
    let dir = &options.pgdata;
    progress.phase("unpack");
    untar(repo, snap, BASE_FILE, dir, progress).await?;
    let manifest = dir.join("backup_manifest");
    if !manifest.exists() && snap.file(MANIFEST_FILE).is_ok() {
        // Spooled backups (clusters with tablespaces) keep the manifest beside the tar.
        let mut out = tokio::fs::File::create(&manifest)
            .await
            .map_err(|e| Error::io(format!("writing {}", manifest.display()), e))?;
        repo.restore_file(snap, MANIFEST_FILE, &mut out, progress)
            .await?;
    }
    let tablespace_map = place_tablespaces(repo, snap, dir, tablespaces, progress).await?;
    // Check the files against the server's manifest before anything is added.
    let verified = if manifest.exists() {
        let tools = PgTools::discover()?;
        let out = Command::new(tools.program("pg_verifybackup"))
            .arg("--no-parse-wal")
            .arg(dir)
            .output()
            .await
            .map_err(|e| Error::io("running pg_verifybackup", e))?;
        if !out.status.success() {
            return Err(err!(
                Corrupt,
                "the unpacked base backup {} does not match its manifest: {}",
                snap.id,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        true
    } else {
        false
    };
    if let Some(map) = tablespace_map {
        std::fs::write(dir.join("tablespace_map"), map)
            .map_err(|e| Error::io(format!("writing tablespace_map in {}", dir.display()), e))?;
    }
    if let Some(conf) = &options.postgresql_conf {
        std::fs::copy(conf, dir.join("postgresql.conf")).map_err(|e| {
            Error::io(
                format!("copying {} into the data directory", conf.display()),
                e,
            )
        })?;
    }
    let mut settings = vec![
        ("restore_command".to_owned(), restore_command.to_owned()),
        ("recovery_target_action".to_owned(), "promote".to_owned()),
        ("recovery_target_timeline".to_owned(), "latest".to_owned()),
        // A recovered copy must not archive into the original's WAL.
        ("archive_mode".to_owned(), "off".to_owned()),
    ];
    match &options.target {
        PointInTime::Time(t) => settings.push((
            "recovery_target_time".into(),
            t.strftime("%Y-%m-%d %H:%M:%S%.6f+00").to_string(),
        )),
        PointInTime::Lsn(l) => settings.push(("recovery_target_lsn".into(), l.to_string())),
        PointInTime::Name(n) => settings.push(("recovery_target_name".into(), n.clone())),
        PointInTime::Latest => {}
    }
    settings.extend(options.settings.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut auto = std::fs::read_to_string(dir.join("postgresql.auto.conf")).unwrap_or_default();
    let _ = writeln!(
        auto,
        "\n# drkit pitr: base backup {} to {}",
        plan.snapshot, options.target
    );
    for (k, v) in &settings {
        let _ = writeln!(auto, "{k} = '{}'", v.replace('\'', "''"));
    }
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text)
            .map_err(|e| Error::io(format!("writing {name} in {}", dir.display()), e))
    };
    write("postgresql.auto.conf", &auto)?;
    write("recovery.signal", "")?;
    // Anything from the original's process that came along in the tar is stale here.
    let _ = std::fs::remove_file(dir.join("postmaster.pid"));
    if is_root() {
        chown_to_postgres(dir)?;
    }
    Ok(verified)
}
