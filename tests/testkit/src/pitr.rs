//! WAL archiving through drkit for the point-in-time recovery tests: a repository and a
//! cluster whose `archive_command` is `drkit wal-push`, both in a folder the postgres user
//! owns.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Drkit, PgCluster};

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

/// A folder the postgres user owns, holding the repository and the recovered clusters.
#[must_use]
pub fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    if is_root() {
        assert!(Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success());
    }
    dir
}

/// An archiving cluster and its repository.
pub struct Setup {
    /// drkit on the repository, as the postgres user (as the archiver runs it).
    pub drkit: Drkit,
    /// The cluster archiving into it.
    pub pg: PgCluster,
    /// The folder holding both.
    pub dir: tempfile::TempDir,
}

/// A key-file repository and a cluster archiving into it through drkit.
#[must_use]
pub fn archiving_cluster(bin: &str) -> Option<Setup> {
    archiving_cluster_with(bin, dr_pg::ClusterOptions::default())
}

/// The same with cluster options (segment size, first WAL file).
#[must_use]
pub fn archiving_cluster_with(bin: &str, options: dr_pg::ClusterOptions) -> Option<Setup> {
    let dir = workdir();
    let key = dir.path().join("key");
    let repo = dir.path().join("repo");
    let mut drkit = Drkit::local(bin, &repo);
    drkit.env = vec![("DRKIT_KEY_FILE".into(), key.display().to_string())];
    drkit.as_postgres = true;
    let out = drkit.run(&["repo", "init", "--generate-key-file", key.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "repo init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let archive = format!(
        "DRKIT_KEY_FILE={} {bin} --quiet --repo file://{} wal-push %p",
        key.display(),
        repo.display()
    );
    let pg = PgCluster::start_with_options(dr_pg::ClusterOptions {
        extra_conf: format!("archive_mode = on\narchive_command = '{archive}'\n"),
        ..options
    })?;
    Some(Setup { drkit, pg, dir })
}

/// Switches WAL and waits until the archiver has stored the segment it closed.
pub fn switch_and_wait(pg: &PgCluster) {
    let closed = pg.psql("postgres", "SELECT pg_walfile_name(pg_switch_wal())");
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        let s = pg.psql(
            "postgres",
            "SELECT coalesce(last_archived_wal, '') || ' ' || failed_count FROM pg_stat_archiver",
        );
        if s.split(' ')
            .next()
            .is_some_and(|last| last >= closed.as_str())
        {
            return;
        }
        assert!(Instant::now() < deadline, "{closed} not archived: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
