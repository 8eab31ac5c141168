//! Kubernetes API failures as drkit errors that name the context, the verb and the
//! object, and say what to do.

use dr_core::{Error, ErrorKind};

/// `verb` (`patch`, `get`) on `object` (`deployment default/api`) in `context` failed.
pub(crate) fn classify(context: &str, verb: &str, object: &str, e: kube::Error) -> Error {
    let classified = match &e {
        kube::Error::Api(s) => {
            let (kind, advice, hint) = match s.code {
                401 => (ErrorKind::PermissionDenied, format!("the credentials of context {context:?} were refused (expired or revoked); refresh them (log in again, or renew the token in the kubeconfig)"), None),
                403 => (ErrorKind::PermissionDenied, format!("grant the user of context {context:?} the {verb:?} verb on it (RBAC), or use a context that has it"), None),
                404 => (ErrorKind::NotFound, String::new(), Some(dr_core::Hint::Namespace)),
                409 if s.reason == "AlreadyExists" => (ErrorKind::AlreadyExists, "pick another name or delete it first".to_owned(), None),
                409 => (ErrorKind::Conflict, "another writer changed it; try again".to_owned(), None),
                422 | 400 => (ErrorKind::InvalidInput, "fix the value named above".to_owned(), None),
                429 | 500..=599 => (ErrorKind::Unavailable, "the API server is overloaded or failing; try again".to_owned(), None),
                _ => (ErrorKind::External, String::new(), None),
            };
            let sep = if advice.is_empty() { "" } else { "; " };
            let out = Error::new(
                kind,
                format!(
                    "{verb} {object} in context {context:?}: {} ({}){sep}{advice}",
                    s.message, s.code
                ),
            );
            match hint {
                Some(h) => out.with_hint(h),
                None => out,
            }
        }
        other => {
            let cause = dr_core::error::chain(other);
            if cause.contains("certificate") {
                Error::new(
                    ErrorKind::PermissionDenied,
                    format!("{verb} {object}: the API server of context {context:?} presented a certificate the kubeconfig does not trust ({cause}); check the cluster's certificate-authority-data (or certificate-authority file) in the kubeconfig, and that the context points at the right server"),
                )
            } else {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("{verb} {object}: cannot reach the API server of context {context:?} ({cause}); check that the cluster is up and the kubeconfig's server address"),
                )
            }
        }
    };
    // The kube error stays the cause, for callers that walk it.
    classified.with_source(e)
}

/// Whether `e` is a lost compare-and-swap (409 Conflict, not AlreadyExists).
pub(crate) fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason != "AlreadyExists")
}

#[cfg(test)]
mod tests {
    use super::classify;

    #[test]
    fn an_api_error_keeps_the_kube_error_as_its_cause_and_hints_what_to_check() {
        let status = kube::core::Status {
            code: 404,
            message: "deployments.apps \"api\" not found".into(),
            reason: "NotFound".into(),
            ..kube::core::Status::default()
        };
        let e = classify(
            "dr",
            "get",
            "deployment shop/api",
            kube::Error::Api(status.boxed()),
        );
        assert_eq!(e.kind(), dr_core::ErrorKind::NotFound);
        assert_eq!(e.hint(), Some(&dr_core::Hint::Namespace));
        let cause = e.causes().next().expect("a cause");
        assert!(
            cause.downcast_ref::<kube::Error>().is_some(),
            "the cause is the kube error: {cause}"
        );
        assert!(
            !e.message().contains("-n"),
            "no CLI flag in the library's words"
        );
    }
}
