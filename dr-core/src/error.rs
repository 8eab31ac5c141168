//! The one public error of drkit: a kind a caller can act on, a message that says what
//! failed and what to do, and the underlying cause.

use std::fmt;

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What sort of failure happened; callers branch on this, never on message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object, snapshot, database or file does not exist.
    NotFound,
    /// A create-only write found the key already present.
    AlreadyExists,
    /// Stored data failed a check: hash, authentication tag or format.
    Corrupt,
    /// The backend cannot do this (with the reason in the message).
    Unsupported,
    /// The caller passed something malformed: URL, option, name.
    InvalidInput,
    /// A service could not be reached or answered with a transient failure.
    Unavailable,
    /// Credentials were refused or the file system denied access.
    PermissionDenied,
    /// An operation ran past its deadline.
    Timeout,
    /// The state does not allow the operation (non-empty target, lock held, ...).
    Conflict,
    /// A key or passphrase did not open the repository.
    WrongKey,
    /// An external program (pg_dump, pg_restore, ...) failed.
    External,
    /// A local I/O failure that fits no other kind.
    Io,
    /// This process no longer holds the lock it acted under (taken over, or not renewed
    /// in time): it must stop without touching anything else.
    LockLost,
    /// Stopped on purpose (Ctrl-C, a signal, a deadline) before it finished.
    Cancelled,
}

impl ErrorKind {
    /// A short, stable name for machine output.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::Corrupt => "corrupt",
            Self::Unsupported => "unsupported",
            Self::InvalidInput => "invalid_input",
            Self::Unavailable => "unavailable",
            Self::PermissionDenied => "permission_denied",
            Self::Timeout => "timeout",
            Self::Conflict => "conflict",
            Self::WrongKey => "wrong_key",
            Self::External => "external",
            Self::Io => "io",
            Self::LockLost => "lock_lost",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What to do about an error, as data: the message says what failed in words every
/// frontend shares, and each frontend says the hint in its own (a flag of the CLI, a
/// keyword argument in Python).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "do", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Hint {
    /// Name the repository to use.
    Repository,
    /// Create a repository at `url`.
    InitRepository {
        /// Where.
        url: String,
    },
    /// Name the source `latest` is about (a URL or a database name), or a snapshot id.
    Source,
    /// Name the Kubernetes namespace (and check the name and the context).
    Namespace,
    /// Give variable `name` a value.
    Var {
        /// The variable.
        name: String,
    },
    /// Resume run `run`: with `rerun` (run the step again) or `skip` (count it done).
    RerunOrSkip {
        /// The run.
        run: String,
        /// The step in flight.
        step: String,
    },
    /// Resume run `run`, taking its lock over once its lease has run out unrenewed.
    TakeOver {
        /// The run.
        run: String,
    },
    /// Replace what the target database holds (clean), or restore beside it and switch
    /// (swap).
    CleanOrSwap,
    /// List the snapshots.
    ListSnapshots,
    /// Verify the repository to list every damaged chunk, and restore from another
    /// snapshot or a copy.
    VerifyRepository,
    /// List the runs.
    ListRuns,
}

/// A drkit error: kind, human message, optional cause, optional hint.
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Source>,
    hint: Option<Hint>,
}

impl Error {
    /// A new error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
            hint: None,
        }
    }

    /// Says what to do about it (see [`Hint`]).
    #[must_use]
    pub fn with_hint(mut self, hint: Hint) -> Self {
        self.hint = Some(hint);
        self
    }

    /// What to do about it, for a frontend to say in its own words.
    #[must_use]
    pub fn hint(&self) -> Option<&Hint> {
        self.hint.as_ref()
    }

    /// Attaches the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What sort of failure this is.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without the cause chain.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the same call may succeed if tried again.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Unavailable | ErrorKind::Timeout)
    }

    /// Prefixes the message with context, keeping kind and source.
    #[must_use]
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// The same error without `prefix` at the start of its message (a context a caller
    /// is about to add in its own words).
    #[must_use]
    pub fn without_prefix(mut self, prefix: &str) -> Self {
        if let Some(rest) = self.message.strip_prefix(prefix) {
            self.message = rest.to_owned();
        }
        self
    }

    /// An I/O error on `what`, with the kind read from the OS error.
    pub fn io(what: impl fmt::Display, err: std::io::Error) -> Self {
        use std::io::ErrorKind as Io;
        let (kind, hint) = match err.kind() {
            Io::NotFound => (ErrorKind::NotFound, ""),
            Io::PermissionDenied | Io::ReadOnlyFilesystem => (
                ErrorKind::PermissionDenied,
                "; check that the folder exists and this user may write to it",
            ),
            Io::AlreadyExists => (ErrorKind::AlreadyExists, ""),
            Io::TimedOut => (ErrorKind::Timeout, ""),
            Io::StorageFull => (ErrorKind::Io, "; free some disk space"),
            _ => (ErrorKind::Io, ""),
        };
        Self::new(kind, format!("{what}: {err}{hint}")).with_source(err)
    }

    /// The message followed by every cause not already in it, on one line.
    #[must_use]
    pub fn full_message(&self) -> String {
        let mut out = self.message.clone();
        if let Some(s) = self.source.as_deref() {
            append_chain(&mut out, s);
        }
        out
    }

    /// The causes, outermost first (`source()`, its source, …).
    pub fn causes(&self) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
        let mut next = self
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static));
        std::iter::from_fn(move || {
            let current = next?;
            next = current.source();
            Some(current)
        })
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({}: {})", self.kind, self.full_message())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// Appends to `out` the first line of `e` and of each of its causes, each once, joined
/// with `: ` — the one way drkit turns a cause chain into text.
pub fn append_chain(out: &mut String, e: &(dyn std::error::Error + 'static)) {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        let line = text.lines().next().unwrap_or_default().trim();
        if !line.is_empty() && !out.contains(line) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(line);
        }
        cur = err.source();
    }
}

/// The cause chain of `e` on one line (see [`append_chain`]).
#[must_use]
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    append_chain(&mut out, e);
    out
}

/// Builds an [`Error`] with `format!` arguments: `err!(NotFound, "no {x}")`.
#[macro_export]
macro_rules! err {
    ($kind:ident, $($arg:tt)+) => {
        $crate::Error::new($crate::ErrorKind::$kind, format!($($arg)+))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_message_appends_causes_once() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = Error::io("writing /x", io);
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(e.full_message().starts_with("writing /x: denied"));
        assert_eq!(e.full_message().matches("denied").count(), 1);
    }

    #[test]
    fn causes_stay_walkable() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "deadline passed");
        let e = Error::io("reading s3://b/k", io).context("restoring snapshot 7f3a");
        let causes: Vec<String> = e.causes().map(ToString::to_string).collect();
        assert_eq!(causes, vec!["deadline passed".to_owned()]);
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(
            chain(&e),
            "restoring snapshot 7f3a: reading s3://b/k: deadline passed"
        );
    }

    #[test]
    fn only_transient_kinds_retry() {
        assert!(err!(Timeout, "slow").is_retryable());
        assert!(!err!(Corrupt, "bad").is_retryable());
    }
}
