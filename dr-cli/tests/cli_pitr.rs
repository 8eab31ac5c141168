//! WAL archiving and point-in-time recovery end to end: PostgreSQL runs `drkit wal-push`
//! as its archive_command, recovered clusters fetch through `drkit wal-fetch`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dr_testkit::pitr::{
    archiving_cluster, archiving_cluster_with, switch_and_wait, workdir, Setup,
};
use dr_testkit::{free_port, Drkit, PgCluster, PASSWORD};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_drkit");

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

fn insert_batch(pg: &PgCluster, batch: i32) {
    pg.psql(
        "postgres",
        &format!("INSERT INTO t SELECT {batch}, g FROM generate_series(1, 1000) g"),
    );
}

/// A recovered server, stopped when dropped.
struct Recovered {
    pgdata: PathBuf,
    port: u16,
    report: Value,
}

impl Recovered {
    fn psql(&self, sql: &str) -> String {
        let bindir = dr_pg::TempCluster::server_bindir().unwrap();
        let out = Command::new(bindir.join("psql"))
            .args([
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ])
            .env("PGPASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sql}: {}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.pgdata.join("drkit-recovery.log")).unwrap_or_default()
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn batches(&self) -> String {
        self.psql("SELECT string_agg(batch || ':' || n, ',' ORDER BY batch) FROM (SELECT batch, count(*) n FROM t GROUP BY batch) x")
    }
}

impl Drop for Recovered {
    fn drop(&mut self) {
        let bindir = dr_pg::TempCluster::server_bindir().unwrap();
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bindir.join("pg_ctl"));
            c
        } else {
            Command::new(bindir.join("pg_ctl"))
        };
        let _ = c
            .args(["-D"])
            .arg(&self.pgdata)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn recover(drkit: &Drkit, dir: &Path, name: &str, target: &[&str], extra: &[&str]) -> Recovered {
    recover_expecting(drkit, dir, name, target, extra, 0)
}

/// Recovers and starts a cluster; `{port}` in `extra` becomes its port. Expects exit
/// status `code` (3: a post-promotion check failed).
fn recover_expecting(
    drkit: &Drkit,
    dir: &Path,
    name: &str,
    target: &[&str],
    extra: &[&str],
    code: i32,
) -> Recovered {
    let pgdata = dir.join(name);
    let port = free_port();
    let port_s = format!("port={port}");
    let sock = format!("unix_socket_directories={}", dir.display());
    let mut args = vec![
        "pitr",
        "--pgdata",
        pgdata.to_str().unwrap(),
        "--start",
        "--timeout",
        "120",
        "--set",
        &port_s,
        "--set",
        &sock,
    ];
    args.extend_from_slice(target);
    let extra: Vec<String> = extra
        .iter()
        .map(|a| a.replace("{port}", &port.to_string()))
        .collect();
    args.extend(extra.iter().map(String::as_str));
    args.insert(0, "--json");
    let out = drkit.run(&args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["promoted"], true, "{report}");
    Recovered {
        pgdata,
        port,
        report,
    }
}

/// Writes batch 4 on a recovered server's new timeline and waits until it is archived.
fn write_on_new_timeline(latest: &Recovered) {
    latest.psql("INSERT INTO t SELECT 4, g FROM generate_series(1, 1000) g");
    let closed = latest.psql("SELECT pg_walfile_name(pg_switch_wal())");
    let deadline = Instant::now() + Duration::from_mins(1);
    while latest.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") < closed {
        assert!(Instant::now() < deadline, "timeline 2 not archived");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Batches 1, 2 and 3, archived; returns a time between batches 1 and 2 and the LSN
/// just after batch 2 (a restore point `after-2` marks it too).
fn three_batches(pg: &PgCluster) -> (String, String) {
    insert_batch(pg, 1);
    switch_and_wait(pg);
    std::thread::sleep(Duration::from_millis(1100));
    let between_1_and_2 = pg.psql(
        "postgres",
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    std::thread::sleep(Duration::from_millis(1100));
    insert_batch(pg, 2);
    let after_2 = pg.psql("postgres", "SELECT pg_current_wal_insert_lsn()");
    pg.psql("postgres", "SELECT pg_create_restore_point('after-2')");
    switch_and_wait(pg);
    insert_batch(pg, 3);
    switch_and_wait(pg);
    (between_1_and_2, after_2)
}

/// The recovered server takes writes, and pg_amcheck finds every table and index intact.
fn check_writable_and_intact(latest: &Recovered) {
    assert_eq!(
        latest.psql("SELECT pg_is_in_recovery()::text || current_setting('transaction_read_only')"),
        "falseoff",
        "{}\n{}",
        std::fs::read_to_string(latest.pgdata.join("drkit-recovery.log")).unwrap_or_default(),
        std::fs::read_to_string(latest.pgdata.join("postmaster.pid")).unwrap_or_default()
    );
    let bindir = dr_pg::TempCluster::server_bindir().unwrap();
    let amcheck = Command::new(bindir.join("pg_amcheck"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &latest.port.to_string(),
            "-U",
            "postgres",
            "--install-missing",
            "--heapallindexed",
            "-d",
            "postgres",
        ])
        .env("PGPASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(
        amcheck.status.success(),
        "pg_amcheck: {}{}",
        String::from_utf8_lossy(&amcheck.stdout),
        String::from_utf8_lossy(&amcheck.stderr)
    );
}

#[test]
fn recovers_to_a_time_an_lsn_a_restore_point_and_the_latest_then_across_timelines() {
    let Some(Setup { drkit, pg, dir }) = archiving_cluster(BIN) else {
        return;
    };
    pg.psql("postgres", "CREATE TABLE t (batch int, n int)");
    let base = drkit.json(&["basebackup", &pg.dsn("postgres")]);
    assert_eq!(base["kind"], "pg_basebackup");

    let (between_1_and_2, after_2) = three_batches(&pg);
    drop(pg); // the primary is gone

    let by_time = recover(
        &drkit,
        dir.path(),
        "by-time",
        &["--target-time", &between_1_and_2],
        &[],
    );
    assert_eq!(
        by_time.batches(),
        "1:1000",
        "exactly the batches before the time"
    );
    assert_eq!(by_time.report["manifest_verified"], true);
    drop(by_time);
    let by_lsn = recover(
        &drkit,
        dir.path(),
        "by-lsn",
        &["--target-lsn", &after_2],
        &[],
    );
    assert_eq!(
        by_lsn.batches(),
        "1:1000,2:1000",
        "LSN {after_2}: {}",
        std::fs::read_to_string(by_lsn.pgdata.join("drkit-recovery.log")).unwrap_or_default()
    );
    drop(by_lsn);
    // Checks after promotion: amcheck and the user's SQL; a false one exits 3.
    let dsn = format!("postgres://postgres:{PASSWORD}@127.0.0.1:{{port}}/postgres");
    let by_name = recover_expecting(
        &drkit,
        dir.path(),
        "by-name",
        &["--target-name", "after-2"],
        &[
            "--check-dsn",
            &dsn,
            "--check",
            "SELECT count(*) = 2000 FROM t",
            "--check",
            "SELECT count(*) = 3000 FROM t",
        ],
        3,
    );
    assert_eq!(by_name.batches(), "1:1000,2:1000");
    let checks = &by_name.report["checks"];
    assert_eq!(checks["checks"][0]["ok"], true, "{checks}");
    assert_eq!(checks["checks"][1]["ok"], false, "{checks}");
    assert!(
        checks["amcheck"]["indexes_checked"].as_u64().is_some(),
        "{checks}"
    );
    drop(by_name);

    // The latest, writable, checked by pg_amcheck; it then archives its own timeline.
    let archive = format!(
        "archive_command=DRKIT_KEY_FILE={} {BIN} --quiet --repo {} wal-push %p",
        dir.path().join("key").display(),
        drkit.repo
    );
    let latest = recover(
        &drkit,
        dir.path(),
        "latest",
        &["--latest"],
        &["--set", "archive_mode=on", "--set", &archive],
    );
    assert_eq!(latest.batches(), "1:1000,2:1000,3:1000");
    check_writable_and_intact(&latest);
    assert_eq!(
        latest.psql("SELECT timeline_id FROM pg_control_checkpoint()"),
        "2"
    );
    write_on_new_timeline(&latest);
    drop(latest);
    let verify = drkit.json(&["wal-verify"]);
    let timelines: Vec<u64> = verify["timelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["timeline"].as_u64().unwrap())
        .collect();
    assert_eq!(timelines, vec![1, 2], "{verify}");
    assert_eq!(verify["ok"], true, "{verify}");
    // Recovering again follows the history file onto timeline 2.
    let again = recover(&drkit, dir.path(), "again", &["--latest"], &[]);
    assert_eq!(again.batches(), "1:1000,2:1000,3:1000,4:1000");
}

#[test]
fn a_missing_segment_is_reported_and_recovery_past_it_refused() {
    let Some(Setup { drkit, pg, dir }) = archiving_cluster(BIN) else {
        return;
    };
    pg.psql("postgres", "CREATE TABLE t (batch int, n int)");
    drkit.json(&["basebackup", &pg.dsn("postgres")]);
    let mut closed = Vec::new();
    for b in 1..=3 {
        insert_batch(&pg, b);
        closed.push(pg.psql(
            "postgres",
            "SELECT pg_walfile_name(pg_current_wal_insert_lsn())",
        ));
        switch_and_wait(&pg);
    }
    // Lose the segment holding batch 2.
    let victim = &closed[1];
    let path = dir.path().join("repo/wal/00000001").join(victim);
    std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));

    let out = drkit.run(&["--json", "wal-verify"]);
    assert_eq!(out.status.code(), Some(3));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["window"]["gap"], victim.as_str(), "{doc}");

    let pgdata = dir.path().join("gap");
    let out = drkit.run(&["pitr", "--pgdata", pgdata.to_str().unwrap(), "--latest"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(victim.as_str()),
        "names the missing segment: {err}"
    );
    assert!(
        !pgdata.exists() || std::fs::read_dir(&pgdata).unwrap().next().is_none(),
        "nothing unpacked"
    );

    // A target before the oldest base backup is refused with the window.
    let out = drkit.run(&[
        "pitr",
        "--pgdata",
        pgdata.to_str().unwrap(),
        "--target-time",
        "2001-01-01T00:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("window"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A re-push of an archived segment with other bytes is refused; the same bytes pass.
    let seg = dir.path().join(&closed[0]);
    std::fs::write(&seg, vec![7u8; 16 << 20]).unwrap();
    let out = drkit.run(&["wal-push", seg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("different contents"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fetched = dir.path().join("fetched");
    let out = drkit.run(&["wal-fetch", &closed[0], fetched.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&fetched, &seg).unwrap();
    assert!(
        drkit
            .run(&["wal-push", seg.to_str().unwrap()])
            .status
            .success(),
        "same bytes: idempotent"
    );
    // Never archived: exit 1 at once.
    let started = Instant::now();
    let out = drkit.run(&[
        "wal-fetch",
        "0000000100000000000000FF",
        dir.path().join("nothing").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a missing segment answers at once, took {:?}",
        started.elapsed()
    );
    assert!(!dir.path().join("nothing").exists());
}

#[test]
fn prune_drops_an_old_base_backup_and_only_the_wal_before_the_kept_one() {
    let Some(Setup { drkit, pg, dir }) = archiving_cluster(BIN) else {
        return;
    };
    pg.psql("postgres", "CREATE TABLE t (batch int, n int)");
    drkit.json(&["basebackup", &pg.dsn("postgres")]);
    insert_batch(&pg, 1);
    switch_and_wait(&pg);
    let kept = drkit.json(&["basebackup", &pg.dsn("postgres")]);
    insert_batch(&pg, 2);
    switch_and_wait(&pg);
    let status = drkit.json(&["status"]);
    assert_eq!(
        status["sources"][0]["at_risk_basis"], "last archived WAL",
        "{status}"
    );
    assert!(status["sources"][0]["at_risk_seconds"].as_f64().unwrap() < 120.0);
    drop(pg);

    let first_needed = kept["metadata"]["first_wal"].as_str().unwrap().to_owned();
    let pruned = drkit.json(&["prune", "--keep-last", "1", "--grace", "0s"]);
    assert_eq!(pruned["report"]["removed"].as_array().unwrap().len(), 1);
    assert!(
        pruned["wal_files_removed"].as_u64().unwrap() > 0,
        "{pruned}"
    );
    let left: Vec<String> = std::fs::read_dir(dir.path().join("repo/wal/00000001"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 24)
        .collect();
    assert!(!left.is_empty());
    assert!(
        left.iter().all(|n| n.as_str() >= first_needed.as_str()),
        "{left:?} vs {first_needed}"
    );
    let latest = recover(&drkit, dir.path(), "after-prune", &["--latest"], &[]);
    assert_eq!(latest.batches(), "1:1000,2:1000");
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_copy_recovers_on_its_own_with_the_wal_copied_before_the_snapshots() {
    let Some(Setup { drkit, pg, dir }) = archiving_cluster(BIN) else {
        return;
    };
    pg.psql("postgres", "CREATE TABLE t (batch int, n int)");
    drkit.json(&["basebackup", &pg.dsn("postgres")]);
    let _ = three_batches(&pg);
    drop(pg); // the primary is gone
    let source_wal = files_under(&dir.path().join("repo/wal"));
    assert!(source_wal.len() >= 4, "{source_wal:?}");
    let url = |name: &str| format!("file://{}", dir.path().join(name).display());

    // Every archived file, then nothing new on a second run.
    let all = drkit.json(&["copy", "--to", &url("dr"), "--init"]);
    assert_eq!(all["copied"].as_array().unwrap().len(), 1, "{all}");
    assert_eq!(all["wal"]["files_copied"], source_wal.len(), "{all}");
    let again = drkit.json(&["copy", "--to", &url("dr")]);
    assert_eq!(again["wal"]["files_copied"], 0, "{again}");
    assert_eq!(again["already_there"].as_array().unwrap().len(), 1);

    // A tier copy takes only what its base backup needs to be consistent.
    let tier = drkit.json(&[
        "copy",
        "--to",
        &url("monthly"),
        "--init",
        "--tier",
        "monthly",
    ]);
    let needed = tier["wal"]["files_copied"].as_u64().unwrap();
    assert!(
        needed >= 1 && (needed as usize) < source_wal.len(),
        "{needed} of {}: {tier}",
        source_wal.len()
    );

    // A damaged WAL file in the source is not copied, and no snapshot lands.
    let victim = source_wal
        .iter()
        .find(|p| p.file_name().unwrap().len() == 24)
        .unwrap();
    let mut bytes = std::fs::read(victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let pristine = std::fs::read(victim).unwrap();
    std::fs::write(victim, &bytes).unwrap();
    let out = drkit.run(&["copy", "--to", &url("broken"), "--init"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failed its check"), "{err}");
    assert!(
        files_under(&dir.path().join("broken/snapshots")).is_empty(),
        "no snapshot in a copy whose WAL failed"
    );
    std::fs::write(victim, pristine).unwrap();

    // The source repository is lost as well: the copies recover on their own.
    std::fs::remove_dir_all(dir.path().join("repo")).unwrap();
    let mut dr = Drkit::local(BIN, &dir.path().join("dr"));
    dr.env.clone_from(&drkit.env);
    dr.as_postgres = true;
    let latest = recover(&dr, dir.path(), "from-dr", &["--latest"], &[]);
    assert_eq!(latest.batches(), "1:1000,2:1000,3:1000");
    drop(latest);
    let mut monthly = Drkit::local(BIN, &dir.path().join("monthly"));
    monthly.env.clone_from(&drkit.env);
    monthly.as_postgres = true;
    let base_only = recover(&monthly, dir.path(), "from-monthly", &["--latest"], &[]);
    assert_eq!(
        base_only.batches(),
        "",
        "the base backup alone: the table, empty"
    );
}

#[test]
fn a_cluster_with_a_tablespace_is_backed_up_and_recovers_with_it_moved() {
    let Some(Setup { drkit, pg, dir }) = archiving_cluster(BIN) else {
        return;
    };
    let ts = dir.path().join("ts");
    std::fs::create_dir(&ts).unwrap();
    if is_root() {
        assert!(Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&ts)
            .status()
            .unwrap()
            .success());
    }
    pg.psql(
        "postgres",
        &format!("CREATE TABLESPACE fast LOCATION '{}'", ts.display()),
    );
    pg.psql(
        "postgres",
        "CREATE TABLE t (batch int, n int) TABLESPACE fast; CREATE INDEX t_n ON t (n) TABLESPACE fast",
    );
    insert_batch(&pg, 1);
    let base = drkit.json(&["basebackup", &pg.dsn("postgres")]);
    assert_eq!(
        base["metadata"]["tablespaces"][0]["location"],
        ts.display().to_string(),
        "{base}"
    );
    insert_batch(&pg, 2);
    switch_and_wait(&pg);
    drop(pg); // the primary is gone; its tablespace folder is still there

    // Back to the old place: it is not empty, so nothing is unpacked anywhere.
    let refused = dir.path().join("refused");
    let out = drkit.run(&["pitr", "--pgdata", refused.to_str().unwrap(), "--latest"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&ts.display().to_string()), "{err}");
    assert!(err.contains("--tablespace-mapping"), "{err}");
    assert!(files_under(&refused).is_empty());
    // A mapping for a place that held no tablespace is named.
    let out = drkit.run(&[
        "pitr",
        "--pgdata",
        refused.to_str().unwrap(),
        "--latest",
        "--tablespace-mapping",
        "/nowhere=/elsewhere",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nowhere"));

    let moved = dir.path().join("ts-moved");
    let mapping = format!("{}={}", ts.display(), moved.display());
    let latest = recover(
        &drkit,
        dir.path(),
        "with-tablespace",
        &["--latest"],
        &["--tablespace-mapping", &mapping],
    );
    assert_eq!(latest.report["manifest_verified"], true);
    assert_eq!(latest.batches(), "1:1000,2:1000");
    assert_eq!(
        latest.psql("SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'fast'"),
        moved.display().to_string()
    );
    assert_eq!(
        latest.psql("SELECT count(*) FROM t WHERE n = 7"),
        "2",
        "the index in the tablespace answers"
    );
    check_writable_and_intact(&latest);
}

#[test]
fn one_mib_segments_archive_and_replay_across_a_log_boundary() {
    // 4,096 one-MiB segments per log file: start just before the boundary.
    let Some(Setup { drkit, pg, dir }) = archiving_cluster_with(
        BIN,
        dr_pg::ClusterOptions {
            wal_segment_mib: Some(1),
            first_wal: Some("000000010000000000000FFA".into()),
            ..dr_pg::ClusterOptions::default()
        },
    ) else {
        return;
    };
    pg.psql("postgres", "CREATE TABLE t (batch int, n int)");
    let base = drkit.json(&["basebackup", &pg.dsn("postgres")]);
    assert_eq!(base["metadata"]["wal_segment_size"], 1 << 20, "{base}");
    for batch in 1..=8 {
        insert_batch(&pg, batch);
        switch_and_wait(&pg);
    }
    drop(pg);
    let archived: Vec<String> = files_under(&dir.path().join("repo/wal"))
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        archived.iter().any(|n| n.starts_with("0000000100000001")),
        "crossed into the next log file: {archived:?}"
    );
    let verify = drkit.run(&["wal-verify"]);
    assert!(
        verify.status.success(),
        "no gap at the log boundary: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let latest = recover(&drkit, dir.path(), "small-segments", &["--latest"], &[]);
    assert_eq!(
        latest.batches(),
        "1:1000,2:1000,3:1000,4:1000,5:1000,6:1000,7:1000,8:1000"
    );
    assert_eq!(
        std::fs::read_to_string(latest.pgdata.join("pg_wal/.drkit-prefetch/segment-size")).unwrap(),
        "1048576",
        "prefetch learnt the segment size"
    );
}

#[test]
fn a_base_backup_whose_wal_cannot_be_archived_gives_up_and_stores_nothing() {
    let dir = workdir();
    let key = dir.path().join("key");
    let mut drkit = Drkit::local(BIN, &dir.path().join("repo"));
    drkit.env = vec![("DRKIT_KEY_FILE".into(), key.display().to_string())];
    assert!(drkit
        .run(&["repo", "init", "--generate-key-file", key.to_str().unwrap()])
        .status
        .success());

    // An archive_command that always fails: PostgreSQL would hold the backup forever.
    let Some(failing) = PgCluster::start_with("archive_mode = on\narchive_command = 'exit 1'\n")
    else {
        return;
    };
    let started = Instant::now();
    let out = drkit.run(&[
        "basebackup",
        &failing.dsn("postgres"),
        "--archive-timeout",
        "3s",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failing to archive WAL"), "{err}");
    assert!(err.contains("--archive-timeout"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    assert!(
        started.elapsed() < Duration::from_mins(1),
        "gave up in {:?}",
        started.elapsed()
    );
    assert_eq!(drkit.json(&["snapshots"]).as_array().map(Vec::len), Some(0));

    // Archiving on without an archive_command: refused before anything starts.
    let Some(unset) = PgCluster::start_with("archive_mode = on\n") else {
        return;
    };
    let out = drkit.run(&["basebackup", &unset.dsn("postgres")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no archive_command"), "{err}");
}

#[test]
fn a_runbook_takes_a_base_backup_and_recovers_from_it() {
    let Some(Setup { drkit, pg, dir }) = archiving_cluster(BIN) else {
        return;
    };
    pg.psql("postgres", "CREATE TABLE t (batch int, n int)");
    let book = |name: &str, steps: &str| {
        let path = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, format!("version: 1\nname: {name}\nsteps:\n{steps}")).unwrap();
        path
    };
    let base = book(
        "base",
        &format!(
            "  - id: base\n    action: pg.basebackup\n    with: {{ url: \"{}\", archive_timeout: 2m }}\n",
            pg.dsn("postgres")
        ),
    );
    let run = drkit.json(&["run", base.to_str().unwrap()]);
    assert_eq!(run["outcome"], "succeeded", "{run}");
    let snapshot = run["steps"][0]["outputs"]["snapshot"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = drkit.json(&["snapshots"]);
    assert!(
        listed.to_string().contains(&snapshot),
        "the base backup is in the repository: {listed}"
    );
    insert_batch(&pg, 1);
    switch_and_wait(&pg);
    drop(pg); // the primary is gone

    let port = free_port();
    let pgdata = dir.path().join("recovered");
    let recover = book(
        "recover",
        &format!(
            "  - id: wal\n    action: pg.wal_verify\n  - id: pitr\n    action: pg.pitr\n    needs: [wal]\n    with:\n      pgdata: \"{}\"\n      target: latest\n      start: true\n      timeout: 2m\n      settings: {{ port: \"{port}\", unix_socket_directories: \"{}\" }}\n",
            pgdata.display(),
            dir.path().display()
        ),
    );
    let run = drkit.json(&["run", recover.to_str().unwrap()]);
    let step = |id: &str| dr_testkit::step(&run, id)["outputs"].clone();
    let wal = step("wal");
    assert_eq!(wal["ok"], true, "{run}");
    assert!(
        wal["files"].as_u64() > Some(0),
        "the archive was read: {wal}"
    );
    let recovered = Recovered {
        pgdata,
        port,
        report: step("pitr"),
    };
    assert_eq!(run["outcome"], "succeeded", "{run}");
    assert_eq!(recovered.report["promoted"], true, "{run}");
    assert_eq!(
        recovered.batches(),
        "1:1000",
        "the rows written after the base backup were replayed"
    );
}
