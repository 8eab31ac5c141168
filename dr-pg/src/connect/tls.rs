//! TLS to Postgres with libpq's settings: `sslmode` (disable, allow, prefer, require,
//! verify-ca, verify-full) and `sslrootcert` (a PEM file, or `system` for the operating
//! system's trust store), from the DSN or `PGSSLMODE` / `PGSSLROOTCERT`.
//!
//! As in libpq, `prefer` and `require` encrypt without checking who answers, unless a
//! root certificate is given (then `require` checks the chain like `verify-ca`);
//! `verify-ca` checks the chain, `verify-full` also the host name. Amazon RDS signs its
//! certificates with the CAs of its published `global-bundle.pem`: pass that file as
//! `sslrootcert` with `sslmode=verify-full`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dr_core::{err, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The DSN parameters this module takes (tokio-postgres knows only part of them).
const KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// Where the operating system keeps its CA bundle, for libpq programs when
/// `sslrootcert=system` (PostgreSQL 15's libpq does not know that value).
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// How a connection uses TLS: libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain connections only.
    Disable,
    /// Accepted for libpq compatibility; behaves as `Prefer`.
    Allow,
    /// TLS when the server offers it, else plain (libpq's default).
    #[default]
    Prefer,
    /// TLS or fail; the certificate is checked only when a root certificate is given.
    Require,
    /// TLS, and the server's certificate chains to a trusted CA.
    VerifyCa,
    /// TLS, a trusted chain, and the certificate names the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self> {
        Ok(match value {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(err!(
                    InvalidInput,
                    "sslmode={other:?} is not a mode; use disable, prefer, require, verify-ca or verify-full"
                ))
            }
        })
    }

    /// The libpq spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// The nearest mode tokio-postgres knows (the checks are ours).
    pub(crate) fn wire(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Wire;
        match self {
            Self::Disable => Wire::Disable,
            Self::Allow | Self::Prefer => Wire::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => Wire::Require,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where trusted CA certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCerts {
    /// A PEM file with one or more CA certificates.
    File(PathBuf),
    /// The operating system's trust store.
    System,
}

/// The TLS half of a connection target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// `sslmode`.
    pub mode: SslMode,
    /// `sslrootcert`.
    pub root_certs: Option<RootCerts>,
}

impl TlsSettings {
    /// Reads the settings from the parameters taken out of a DSN, falling back to
    /// `PGSSLMODE` and `PGSSLROOTCERT`.
    pub(crate) fn from_params(params: &[(String, String)]) -> Result<Self> {
        let get = |key: &str| {
            params
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        if get("sslcert").is_some() || get("sslkey").is_some() {
            return Err(err!(
                Unsupported,
                "client certificates (sslcert, sslkey) are not supported yet; log in with a password, or use a local proxy that presents the certificate"
            ));
        }
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mode = match get("sslmode").or_else(|| env("PGSSLMODE")) {
            Some(m) => SslMode::parse(&m)?,
            None => SslMode::default(),
        };
        let root_certs = get("sslrootcert")
            .or_else(|| env("PGSSLROOTCERT"))
            .map(|v| {
                if v == "system" {
                    RootCerts::System
                } else {
                    RootCerts::File(PathBuf::from(v))
                }
            })
            .or_else(|| {
                // libpq's default place, used by the verifying modes.
                let home = env("HOME")?;
                let default = Path::new(&home).join(".postgresql/root.crt");
                (matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && default.is_file())
                    .then_some(RootCerts::File(default))
            });
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_certs.is_none() {
            return Err(err!(
                InvalidInput,
                "sslmode={mode} needs the CA that signed the server's certificate: add sslrootcert=/path/to/ca.pem (for Amazon RDS, its global-bundle.pem) or sslrootcert=system"
            ));
        }
        Ok(Self { mode, root_certs })
    }

    /// Whether the server's certificate chain is checked.
    #[must_use]
    pub fn verifies_chain(&self) -> bool {
        matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull)
            || (self.mode == SslMode::Require && self.root_certs.is_some())
    }

    /// `?sslmode=…` for messages, empty for the default.
    pub(crate) fn suffix(&self) -> String {
        match (self.mode, &self.root_certs) {
            (SslMode::Prefer, None) => String::new(),
            (mode, None) => format!("?sslmode={mode}"),
            (mode, Some(RootCerts::System)) => format!("?sslmode={mode}&sslrootcert=system"),
            (mode, Some(RootCerts::File(p))) => {
                format!("?sslmode={mode}&sslrootcert={}", p.display())
            }
        }
    }

    /// The libpq environment for child programs (pg_dump, pg_restore, psql), so they
    /// connect the way drkit does.
    pub(crate) fn libpq_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("PGSSLMODE", self.mode.as_str().to_owned())];
        match &self.root_certs {
            Some(RootCerts::File(p)) => env.push(("PGSSLROOTCERT", p.display().to_string())),
            Some(RootCerts::System) => {
                if let Some(bundle) = SYSTEM_BUNDLES.iter().find(|p| Path::new(p).is_file()) {
                    env.push(("PGSSLROOTCERT", (*bundle).to_owned()));
                }
            }
            None => {}
        }
        env
    }

    /// A tokio-postgres connector that checks what these settings ask for.
    pub(crate) fn connector(&self) -> Result<MakeRustlsConnect> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match &self.root_certs {
            Some(roots) if self.verifies_chain() => {
                let roots = Arc::new(load_roots(roots)?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| err!(InvalidInput, "the TLS trust store is unusable: {e}"))?;
                if self.mode == SslMode::VerifyFull {
                    webpki
                } else {
                    Arc::new(ChainOnly(webpki))
                }
            }
            _ => Arc::new(EncryptOnly(provider.clone())),
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| err!(External, "setting up TLS failed: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }
}

fn load_roots(roots: &RootCerts) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match roots {
        RootCerts::File(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect)
                .map_err(|e| {
                    err!(
                        InvalidInput,
                        "cannot read the CA certificates in sslrootcert={}: {e}; point it at a PEM file",
                        path.display()
                    )
                })?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(err!(
                    InvalidInput,
                    "sslrootcert={} holds no usable CA certificate; point it at the PEM file of the CA that signed the server's certificate",
                    path.display()
                ));
            }
        }
        RootCerts::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(err!(
                    NotFound,
                    "sslrootcert=system: the operating system's trust store has no certificates (install ca-certificates) or name a PEM file instead"
                ));
            }
        }
    }
    Ok(store)
}

/// `verify-ca`: the chain must be trusted; the name in the certificate is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` / `require` without a root certificate: encrypted, but whoever answers is
/// accepted (libpq does the same). The handshake signature is still checked.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Takes the TLS parameters out of a DSN, returning the rest (for tokio-postgres, which
/// rejects `verify-full` and `sslrootcert`) and the parameters taken, values decoded.
pub(crate) fn extract(dsn: &str) -> Result<(String, Vec<(String, String)>)> {
    let dsn = dsn.trim();
    if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        let Some((base, query)) = dsn.split_once('?') else {
            return Ok((dsn.to_owned(), Vec::new()));
        };
        let mut kept = Vec::new();
        let mut taken = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if KEYS.contains(&k) {
                let v = percent_encoding::percent_decode_str(v)
                    .decode_utf8()
                    .map_err(|_| {
                        err!(
                            InvalidInput,
                            "the value of {k} in the Postgres URL is not UTF-8"
                        )
                    })?;
                taken.push((k.to_owned(), v.into_owned()));
            } else {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, taken));
    }
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for (key, value, raw) in key_values(dsn)? {
        if KEYS.contains(&key.as_str()) {
            taken.push((key, value));
        } else {
            kept.push(raw);
        }
    }
    Ok((kept.join(" "), taken))
}

/// Splits a libpq `key=value` string into (key, unquoted value, the pair as written).
fn key_values(dsn: &str) -> Result<Vec<(String, String, &str)>> {
    let bad = || {
        err!(
            InvalidInput,
            "invalid Postgres connection string (expected key=value pairs); use postgres://user@host:port/database"
        )
    };
    let mut out = Vec::new();
    let mut rest = dsn.trim_start();
    while !rest.is_empty() {
        let start = rest;
        let eq = rest.find('=').ok_or_else(bad)?;
        let key = rest[..eq].trim().to_owned();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(bad());
        }
        rest = rest[eq + 1..].trim_start();
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end;
        if rest.starts_with('\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some((_, '\\')) => value.push(chars.next().ok_or_else(bad)?.1),
                    Some((i, '\'')) => {
                        end = i + 1;
                        break;
                    }
                    Some((_, c)) => value.push(c),
                    None => return Err(bad()),
                }
            }
        } else {
            loop {
                match chars.next() {
                    Some((_, '\\')) => value.push(chars.next().ok_or_else(bad)?.1),
                    Some((i, c)) if c.is_whitespace() => {
                        end = i;
                        break;
                    }
                    Some((_, c)) => value.push(c),
                    None => {
                        end = rest.len();
                        break;
                    }
                }
            }
        }
        rest = &rest[end..];
        let raw = &start[..start.len() - rest.len()];
        out.push((key, value, raw.trim()));
        rest = rest.trim_start();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(dsn: &str) -> (String, Vec<(String, String)>) {
        extract(dsn).unwrap()
    }

    #[test]
    fn urls_give_up_their_tls_parameters() {
        let (rest, t) = taken(
            "postgres://u:p@db:5432/app?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Frds%20ca.pem",
        );
        assert_eq!(rest, "postgres://u:p@db:5432/app?application_name=x");
        assert_eq!(
            t,
            vec![
                ("sslmode".into(), "verify-full".into()),
                ("sslrootcert".into(), "/etc/rds ca.pem".into())
            ]
        );
        assert_eq!(
            taken("postgres://db/app?sslmode=require").0,
            "postgres://db/app"
        );
        assert_eq!(taken("postgres://db/app").1, vec![]);
    }

    #[test]
    fn key_value_strings_give_up_theirs() {
        let (rest, t) = taken(
            "host=db  sslmode = verify-ca password='it s' sslrootcert='/a b/ca.pem' dbname=app",
        );
        assert!(rest.starts_with("host=db "), "{rest}");
        assert!(rest.ends_with("dbname=app"), "{rest}");
        assert!(!rest.contains("ssl"), "{rest}");
        assert_eq!(t[0], ("sslmode".into(), "verify-ca".into()));
        assert_eq!(t[1], ("sslrootcert".into(), "/a b/ca.pem".into()));
        let (rest, _) = taken(r"host=db password='a\'b c' sslmode=disable");
        assert_eq!(rest, r"host=db password='a\'b c'");
    }

    #[test]
    fn verifying_modes_need_a_root_certificate() {
        let p = |pairs: &[(&str, &str)]| {
            TlsSettings::from_params(
                &pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<Vec<_>>(),
            )
        };
        let s = p(&[("sslmode", "verify-full"), ("sslrootcert", "system")]).unwrap();
        assert_eq!(s.root_certs, Some(RootCerts::System));
        assert!(s.verifies_chain());
        let s = p(&[("sslmode", "require")]).unwrap();
        assert!(!s.verifies_chain());
        assert_eq!(s.suffix(), "?sslmode=require");
        assert!(p(&[("sslmode", "required")])
            .unwrap_err()
            .to_string()
            .contains("verify-full"));
        if std::env::var_os("PGSSLROOTCERT").is_none() {
            let home = std::env::var("HOME").unwrap_or_default();
            if !Path::new(&home).join(".postgresql/root.crt").exists() {
                assert!(p(&[("sslmode", "verify-full")])
                    .unwrap_err()
                    .to_string()
                    .contains("sslrootcert="));
            }
        }
        assert!(p(&[("sslcert", "/c.pem")])
            .unwrap_err()
            .to_string()
            .contains("client certificates"));
    }
}
