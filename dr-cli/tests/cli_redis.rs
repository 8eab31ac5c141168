//! Redis through the `drkit` binary, against Debian's redis-server filled by redis-cli:
//! every value type, several databases and expiries come back as the server held them
//! (type and contents compared key by key), replayed into a running server or loaded by a server
//! from the data folder a restore wrote; the password appears nowhere; a wrong password,
//! a closed port and a server that holds keys are refused naming the fix.

use std::path::Path;

use dr_testkit::{stderr, Drkit, Redis};

const BIN: &str = env!("CARGO_BIN_EXE_drkit");
const PASSWORD: &str = "redis-secret-pw-42";

fn encrypted_repo(dir: &Path) -> Drkit {
    let key = dir.join("key");
    let mut d = Drkit::local(BIN, &dir.join("repo"));
    d.env = vec![("DRKIT_KEY_FILE".into(), key.display().to_string())];
    let out = d.run(&["repo", "init", "--generate-key-file", key.to_str().unwrap()]);
    assert!(out.status.success(), "repo init: {}", stderr(&out));
    d
}

/// Every value type in its small and large encodings, in two databases, with expiries.
fn fill(server: &Redis) {
    let commands = "SET plain hello
        SET number 12345
        SET expiring soon EX 86400
        HSET small-hash a 1 b 2
        RPUSH small-list x y z
        SADD int-set 1 2 3
        SADD word-set red green
        ZADD small-zset 1.5 a 2 b
        XADD stream 1-1 f v
        XADD stream 2-1 f w
        XGROUP CREATE stream workers 0
        XREADGROUP GROUP workers alice COUNT 1 STREAMS stream >
        -n 3 SET in-db3 three";
    for line in commands.lines() {
        let args: Vec<&str> = line.split_whitespace().collect();
        let _ = server.cli(&args);
    }
    let long = "lorem ipsum ".repeat(2000);
    let _ = server.cli(&["SET", "compressible", &long]);
    let _ = server.cli(&["-n", "3", "SET", &"k".repeat(100), "a long key"]);
    // Longer than the listpack limits (64 bytes): the large encodings (a hash table, a
    // quicklist, a hash set, a skiplist).
    let medium = "lorem ipsum ".repeat(10);
    let members: Vec<String> = (0..600).map(|i| i.to_string()).collect();
    let mut hash = vec!["HSET", "big-hash"];
    let mut list = vec!["RPUSH", "big-list"];
    let mut set = vec!["SADD", "big-set"];
    let mut zset = vec!["ZADD", "big-zset"];
    for m in &members {
        hash.extend([m.as_str(), medium.as_str()]);
        list.push(medium.as_str());
        set.push(m.as_str());
        zset.extend([m.as_str(), m.as_str()]);
    }
    for args in [&hash, &list, &set, &zset] {
        let _ = server.cli(args);
    }
}

#[test]
fn a_redis_server_comes_back_key_for_key() {
    let Some(source) = Redis::start(Some(PASSWORD)) else {
        return;
    };
    fill(&source);
    let dir = tempfile::tempdir().unwrap();
    let d = encrypted_repo(dir.path());
    let out = d.run(&["--json", "backup", &source.url()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snap["kind"], "redis");
    assert_eq!(snap["metadata"]["keys"]["0"], 14, "{snap}");
    assert_eq!(snap["metadata"]["keys"]["3"], 2, "{snap}");
    let listing = d.run(&["snapshots"]);
    for shown in [&out.stdout, &out.stderr, &listing.stdout] {
        assert!(
            !String::from_utf8_lossy(shown).contains(PASSWORD),
            "the password was printed"
        );
    }

    // Replayed into a running, empty server.
    let target = Redis::start(None).unwrap();
    let report = d.json(&["restore-redis", "latest", "--to", &target.url()]);
    assert_eq!(report["keys"]["0"], 14, "{report}");
    for db in [0, 3] {
        assert_eq!(target.contents(db), source.contents(db), "db{db} differs");
    }
    assert_eq!(
        target
            .cli(&["XPENDING", "stream", "workers"])
            .lines()
            .next(),
        Some("1")
    );

    // Again into a server that now holds keys: refused; with --overwrite, the same keys.
    let out = d.run(&["restore-redis", "latest", "--to", &target.url()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--overwrite"), "{}", stderr(&out));
    d.json(&[
        "restore-redis",
        "latest",
        "--to",
        &target.url(),
        "--overwrite",
    ]);
    assert_eq!(target.contents(0), source.contents(0));

    // Written as the RDB of a stopped server's data folder, which a server then loads.
    let data = tempfile::tempdir().unwrap();
    d.json(&[
        "restore-redis",
        "latest",
        "--data-dir",
        data.path().to_str().unwrap(),
    ]);
    let loaded = Redis::start_in(data, None).unwrap();
    for db in [0, 3] {
        assert_eq!(
            loaded.contents(db),
            source.contents(db),
            "db{db} differs after loading"
        );
    }
}

#[test]
fn bad_servers_are_refused_naming_the_fix() {
    let Some(server) = Redis::start(Some(PASSWORD)) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = encrypted_repo(dir.path());
    let wrong = format!("redis://:not-the-password@127.0.0.1:{}", server.port);
    let out = d.run(&["backup", &wrong]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("refused the password"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
    let closed = format!("redis://127.0.0.1:{}", dr_testkit::free_port());
    let out = d.run(&["backup", &closed]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot connect"), "{}", stderr(&out));
    let out = d.run(&["backup", "rediss://127.0.0.1:1"]);
    assert!(stderr(&out).contains("TLS"), "{}", stderr(&out));
    assert_eq!(d.json(&["snapshots"]).as_array().map(Vec::len), Some(0));

    // `plan` reads the servers: a wrong password and a server holding keys are refused
    // before anything runs.
    let _ = server.cli(&["SET", "live", "data"]);
    let plan = |step: &str| {
        let book = dir.path().join("redis.yaml");
        std::fs::write(&book, format!("version: 1\nname: cache-dr\nsteps:\n{step}")).unwrap();
        let out = d.run(&["plan", book.to_str().unwrap()]);
        assert!(!out.status.success());
        format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out))
    };
    // Every step the run would refuse is named, not just the first.
    let err = plan(&format!(
        "  - id: backup\n    action: redis.backup\n    with: {{ url: \"{wrong}\" }}\n  - id: restore\n    action: redis.restore\n    with: {{ url: \"{}\" }}\n",
        server.url()
    ));
    assert!(err.contains("2 steps would fail"), "{err}");
    assert!(err.contains("refused the password"), "{err}");
    assert!(
        err.contains("holds 1 keys") && err.contains("overwrite: true"),
        "{err}"
    );
    assert!(
        !err.contains(PASSWORD) && !err.contains("not-the-password"),
        "{err}"
    );
}
