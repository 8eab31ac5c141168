//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// drkit: backups that restore, failovers that prove themselves.
#[derive(Debug, Parser)]
#[command(name = "drkit", version, about, long_about = None)]
pub struct Cli {
    /// Repository URL: file:///path, s3://bucket/prefix, memory://name.
    #[arg(long, global = true, env = "DRKIT_REPO")]
    pub repo: Option<String>,
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage the repository.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Back up a Postgres database (pg_dump, deduplicated, compressed, encrypted).
    Backup(BackupArgs),
    /// List snapshots.
    Snapshots,
    /// Restore a snapshot into a Postgres database.
    Restore(RestoreArgs),
    /// Check a snapshot: re-read every chunk, or restore it into a scratch database and test it.
    Verify(VerifyArgs),
    /// Start a throwaway Postgres, back it up, drop it, restore it, verify it, report timings.
    Demo(DemoArgs),
}

/// Repository subcommands.
#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Create a repository at --repo.
    Init(InitArgs),
}

/// `drkit repo init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Store data unencrypted (otherwise DRKIT_PASSWORD, DRKIT_PASSWORD_FILE or DRKIT_KEY_FILE is required).
    #[arg(long)]
    pub no_encryption: bool,
    /// Create a new random key file at this path and encrypt with it.
    #[arg(long, conflicts_with = "no_encryption")]
    pub generate_key_file: Option<PathBuf>,
    /// zstd compression level, 1-19.
    #[arg(long, default_value_t = 3)]
    pub compression_level: i32,
}

/// `drkit backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// postgres://user:password@host:port/database (the password may come from PGPASSWORD instead).
    pub database: String,
    /// Tag the snapshot, KEY=VALUE; repeatable.
    #[arg(long = "tag", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Do not save roles and tablespaces (pg_dumpall --globals-only).
    #[arg(long)]
    pub skip_globals: bool,
    /// Record no per-table row counts.
    #[arg(long, conflicts_with = "count_max_bytes")]
    pub no_row_counts: bool,
    /// Count rows only in tables up to this many bytes on disk.
    #[arg(long)]
    pub count_max_bytes: Option<u64>,
    /// Fail instead of waiting longer than this many seconds for a table lock.
    #[arg(long, value_name = "SECS")]
    pub lock_wait_timeout: Option<u64>,
}

/// `drkit restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot id (or a unique prefix), or `latest`.
    pub snapshot: String,
    /// Target: postgres://user:password@host:port/database.
    #[arg(long)]
    pub to: String,
    /// Restore into <db>_restored, then rename <db> to <db>_old and <db>_restored to <db>.
    #[arg(long, group = "mode")]
    pub swap: bool,
    /// Replace the snapshot's objects inside the existing database.
    #[arg(long, group = "mode")]
    pub clean: bool,
    /// The database must not exist; create it.
    #[arg(long, group = "mode")]
    pub create: bool,
    /// pg_restore parallel jobs (default: one per core); 1 streams with no local spool file.
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Also restore roles and tablespaces.
    #[arg(long)]
    pub globals: bool,
    /// Objects belong to the restoring user (pg_restore --no-owner).
    #[arg(long)]
    pub no_owner: bool,
    /// With --swap, end other sessions on the old database so it can be renamed.
    #[arg(long, requires = "swap")]
    pub terminate_connections: bool,
    /// Folder for the spooled dump when restoring with several jobs.
    #[arg(long)]
    pub scratch_dir: Option<PathBuf>,
}

/// `drkit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Snapshot id (or a unique prefix), or `latest`; all snapshots when omitted.
    pub snapshot: Option<String>,
    /// Also restore into a scratch database on this server and check it.
    #[arg(long)]
    pub restore_into: Option<String>,
    /// SQL that must return true or a non-zero count after restore; repeatable.
    #[arg(long = "check", requires = "restore_into")]
    pub checks: Vec<String>,
    /// Keep the scratch database for inspection.
    #[arg(long, requires = "restore_into")]
    pub keep: bool,
}

/// `drkit demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Orders in the sample database (customers are a tenth of that).
    #[arg(long, default_value_t = 500_000)]
    pub rows: u64,
    /// Keep the repository folder afterwards and print where it is.
    #[arg(long)]
    pub keep_repo: bool,
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("tag {s:?} is not KEY=VALUE"))?;
    if k.is_empty() {
        return Err(format!("tag {s:?} has an empty key"));
    }
    Ok((k.to_owned(), v.to_owned()))
}
