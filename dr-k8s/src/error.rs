//! Kubernetes API failures as drkit errors that name the context, the verb and the
//! object, and say what to do.

use dr_core::{Error, ErrorKind};

/// `verb` (`patch`, `get`) on `object` (`deployment default/api`) in `context` failed.
pub(crate) fn classify(context: &str, verb: &str, object: &str, e: kube::Error) -> Error {
    match e {
        kube::Error::Api(s) => {
            let (kind, advice) = match s.code {
                401 => (ErrorKind::PermissionDenied, format!("the credentials of context {context:?} were refused (expired or revoked); refresh them (log in again, or renew the token in the kubeconfig)")),
                403 => (ErrorKind::PermissionDenied, format!("grant the user of context {context:?} the {verb:?} verb on it (RBAC), or use a context that has it")),
                404 => (ErrorKind::NotFound, "check the name, the namespace (-n) and the context".to_owned()),
                409 if s.reason == "AlreadyExists" => (ErrorKind::AlreadyExists, "pick another name or delete it first".to_owned()),
                409 => (ErrorKind::Conflict, "another writer changed it; try again".to_owned()),
                422 | 400 => (ErrorKind::InvalidInput, "fix the value named above".to_owned()),
                429 | 500..=599 => (ErrorKind::Unavailable, "the API server is overloaded or failing; try again".to_owned()),
                _ => (ErrorKind::External, String::new()),
            };
            let sep = if advice.is_empty() { "" } else { "; " };
            Error::new(
                kind,
                format!(
                    "{verb} {object} in context {context:?}: {} ({}){sep}{advice}",
                    s.message, s.code
                ),
            )
        }
        other => {
            let cause = causes(&other);
            if cause.contains("certificate") {
                return Error::new(
                    ErrorKind::PermissionDenied,
                    format!("{verb} {object}: the API server of context {context:?} presented a certificate the kubeconfig does not trust ({cause}); check the cluster's certificate-authority-data (or certificate-authority file) in the kubeconfig, and that the context points at the right server"),
                );
            }
            Error::new(
                ErrorKind::Unavailable,
                format!("{verb} {object}: cannot reach the API server of context {context:?} ({cause}); check that the cluster is up and the kubeconfig's server address"),
            )
        }
    }
}

/// `e` and what caused it, outermost first: `client error (Connect): invalid peer
/// certificate: UnknownIssuer`.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(c) = next {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        next = c.source();
    }
    text
}

/// Whether `e` is a lost compare-and-swap (409 Conflict, not AlreadyExists).
pub(crate) fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason != "AlreadyExists")
}
