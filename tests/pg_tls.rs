//! Postgres over TLS: a server that accepts only TLS connections (like Amazon RDS with
//! `rds.force_ssl`), certificates from a test CA, libpq's sslmode semantics.

use std::path::Path;
use std::sync::Arc;

use dr_core::progress::NoProgress;
use dr_core::repo::{InitOptions, Repository};
use dr_core::store::{DynStore, LocalStore};
use dr_core::ErrorKind;
use dr_pg::{BackupOptions, ConnInfo, RestoreMode, RestoreOptions};
use dr_testkit::{PgCluster, PASSWORD};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// A CA that signs a server certificate for `localhost` only, and a second CA that
/// signed nothing of this server's.
struct Pki {
    ca: String,
    rogue_ca: String,
    cert: String,
    key: String,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn pki() -> Pki {
    let ca = ca("drkit test CA");
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca).unwrap();
    Pki {
        ca: ca.pem(),
        rogue_ca: self::ca("some other CA").pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// Files the server reads must belong to the user it runs as (`postgres` under root).
fn give_to_server(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
        let out = std::process::Command::new("id")
            .args(["-u", "postgres"])
            .output()
            .unwrap();
        let uid: u32 = String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::os::unix::fs::chown(path, Some(uid), None).unwrap();
    }
}

/// A cluster that refuses every connection without TLS.
fn tls_only_cluster(dir: &Path, pki: &Pki) -> Option<PgCluster> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let write = |name: &str, text: &str, mode: u32| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        give_to_server(&p);
        p
    };
    let cert = write("server.crt", &pki.cert, 0o644);
    let key = write("server.key", &pki.key, 0o600);
    let hba = write(
        "pg_hba.conf",
        "local all all trust\nhostnossl all all all reject\nhostssl all all all scram-sha-256\n",
        0o644,
    );
    PgCluster::start_with(&format!(
        "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nhba_file = '{}'\n",
        cert.display(),
        key.display(),
        hba.display()
    ))
}

fn dsn(host: &str, pg: &PgCluster, db: &str, tls: &str) -> String {
    format!(
        "postgres://postgres:{PASSWORD}@{host}:{}/{db}?{tls}",
        pg.port()
    )
}

async fn connect_error(dsn: &str) -> dr_core::Error {
    let conn = ConnInfo::parse(dsn).unwrap();
    match conn.connect().await {
        Ok(_) => panic!("{conn} connected"),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn backups_and_restores_run_over_tls_and_check_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let Some(pg) = tls_only_cluster(dir.path(), &pki) else {
        return;
    };
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca).unwrap();
    let rogue = dir.path().join("rogue.pem");
    std::fs::write(&rogue, &pki.rogue_ca).unwrap();
    pg.psql("postgres", "CREATE DATABASE app");
    pg.psql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY, v text); \
         INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g",
    );

    // Plain connections are refused by the server; drkit says what to change.
    let e = connect_error(&dsn("127.0.0.1", &pg, "app", "sslmode=disable")).await;
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("sslmode=require"), "{e}");
    assert!(!e.to_string().contains(PASSWORD), "{e}");

    // require: encrypted, certificate not checked (libpq's meaning). pg_dump gets the
    // same mode, or the server would refuse it.
    let store: DynStore = Arc::new(LocalStore::new(dir.path().join("repo")));
    let repo = Repository::init(store, &InitOptions::unencrypted())
        .await
        .unwrap();
    let source = ConnInfo::parse(&dsn("127.0.0.1", &pg, "app", "sslmode=require")).unwrap();
    let snap = dr_pg::backup(
        &repo,
        &source,
        &BackupOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert!(snap.source.contains("sslmode=require"), "{}", snap.source);

    // verify-full with the right CA and the name in the certificate: the restore (our
    // connection, pg_restore and psql) runs and the rows come back equal.
    let full = format!(
        "sslmode=verify-full&sslrootcert={}",
        ca.display().to_string().replace('/', "%2F")
    );
    let target = ConnInfo::parse(&dsn("localhost", &pg, "copy", &full)).unwrap();
    let options = RestoreOptions {
        mode: RestoreMode::Create,
        ..RestoreOptions::default()
    };
    dr_pg::restore(&repo, &snap, &target, &options, Arc::new(NoProgress))
        .await
        .unwrap();
    let sum = "SELECT count(*) || ':' || md5(string_agg(id || v, ',' ORDER BY id)) FROM t";
    assert_eq!(pg.psql("copy", sum), pg.psql("app", sum));
    let client = target.connect().await.unwrap();
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the session is encrypted");

    // verify-full by an address the certificate does not name: refused.
    let e = connect_error(&dsn("127.0.0.1", &pg, "app", &full)).await;
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("certificate"), "{e}");
    // verify-ca checks the chain only: the same address is accepted.
    let ca_only = full.replace("verify-full", "verify-ca");
    ConnInfo::parse(&dsn("127.0.0.1", &pg, "app", &ca_only))
        .unwrap()
        .connect()
        .await
        .unwrap();
    // A CA that did not sign the server's certificate: refused, also under require.
    for mode in ["verify-full", "verify-ca", "require"] {
        let untrusted = format!(
            "sslmode={mode}&sslrootcert={}",
            rogue.display().to_string().replace('/', "%2F")
        );
        let e = connect_error(&dsn("localhost", &pg, "app", &untrusted)).await;
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{mode}: {e}");
        assert!(e.to_string().contains("sslrootcert"), "{mode}: {e}");
    }
    // A root certificate file that is not there is named.
    let e = connect_error(&dsn(
        "localhost",
        &pg,
        "app",
        "sslmode=verify-full&sslrootcert=%2Fnowhere%2Fca.pem",
    ))
    .await;
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("/nowhere/ca.pem"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn require_against_a_server_without_tls_fails_clearly() {
    let Some(pg) = PgCluster::start() else {
        return;
    };
    let e = connect_error(&dsn("127.0.0.1", &pg, "postgres", "sslmode=require")).await;
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("does not offer TLS"), "{e}");
    // prefer (the default) falls back to a plain connection.
    ConnInfo::parse(&dsn("127.0.0.1", &pg, "postgres", "sslmode=prefer"))
        .unwrap()
        .connect()
        .await
        .unwrap();
}
