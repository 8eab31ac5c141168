//! Exceptions mirror `dr_core::ErrorKind` under one base, `DrkitError`.

use dr_core::{Error, ErrorKind};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    _native,
    DrkitError,
    PyException,
    "Base of every drkit error."
);
create_exception!(
    _native,
    NotFoundError,
    DrkitError,
    "The object, snapshot or database does not exist."
);
create_exception!(
    _native,
    AlreadyExistsError,
    DrkitError,
    "The repository, database or object already exists."
);
create_exception!(
    _native,
    CorruptError,
    DrkitError,
    "Stored data failed a check."
);
create_exception!(
    _native,
    UnsupportedError,
    DrkitError,
    "The backend cannot do this."
);
create_exception!(
    _native,
    InvalidInputError,
    DrkitError,
    "A URL, option or name is malformed."
);
create_exception!(
    _native,
    UnavailableError,
    DrkitError,
    "A service could not be reached."
);
create_exception!(
    _native,
    PermissionDeniedError,
    DrkitError,
    "Credentials or file permissions were refused."
);
create_exception!(
    _native,
    TimeoutError,
    DrkitError,
    "An operation ran past its deadline."
);
create_exception!(
    _native,
    ConflictError,
    DrkitError,
    "The current state does not allow this."
);
create_exception!(
    _native,
    WrongKeyError,
    DrkitError,
    "The passphrase or key file does not open the repository."
);
create_exception!(
    _native,
    ExternalError,
    DrkitError,
    "An external program (pg_dump, pg_restore, ...) failed."
);

/// The one conversion from drkit errors to Python exceptions.
#[allow(clippy::needless_pass_by_value)] // used as `map_err(to_py)`
pub fn to_py(e: Error) -> PyErr {
    let msg = match e.hint() {
        Some(h) => format!("{}; {}", e.full_message(), hint(h)),
        None => e.full_message(),
    };
    match e.kind() {
        ErrorKind::NotFound => NotFoundError::new_err(msg),
        ErrorKind::AlreadyExists => AlreadyExistsError::new_err(msg),
        ErrorKind::Corrupt => CorruptError::new_err(msg),
        ErrorKind::Unsupported => UnsupportedError::new_err(msg),
        ErrorKind::InvalidInput => InvalidInputError::new_err(msg),
        ErrorKind::Unavailable => UnavailableError::new_err(msg),
        ErrorKind::PermissionDenied => PermissionDeniedError::new_err(msg),
        ErrorKind::Timeout => TimeoutError::new_err(msg),
        ErrorKind::Conflict | ErrorKind::LockLost => ConflictError::new_err(msg),
        ErrorKind::WrongKey => WrongKeyError::new_err(msg),
        ErrorKind::External => ExternalError::new_err(msg),
        _ => DrkitError::new_err(msg),
    }
}

/// What to do about an error, in Python's words (keyword arguments and methods).
fn hint(h: &dr_core::Hint) -> String {
    use dr_core::Hint;
    match h {
        Hint::Repository => "pass repo= (a drkit.Repository)".to_owned(),
        Hint::InitRepository { url } => format!("create one with drkit.Repository.init({url:?}, …)"),
        Hint::Source => "pass source= (a URL or a database name), or a snapshot id".to_owned(),
        Hint::Namespace => "check the name, namespace= and the Kubernetes context".to_owned(),
        Hint::Var { name } => format!("pass vars={{{name:?}: …}}"),
        Hint::RerunOrSkip { run, step } => format!(
            "resume with drkit.resume({run:?}, rerun=[{step:?}]) (run it again) or skip=[{step:?}] (count it as done)"
        ),
        Hint::TakeOver { run } => format!("if its machine is dead: drkit.resume({run:?}, take_over=True)"),
        Hint::CleanOrSwap => "pass mode=\"clean\" to replace its objects in place, mode=\"swap\" to restore beside it and switch, or name a new database".to_owned(),
        Hint::ListSnapshots => "list them with Repository.snapshots()".to_owned(),
        Hint::VerifyRepository => "run Repository.verify() to list every damaged chunk, and restore from another snapshot or a copy".to_owned(),
        Hint::ListRuns => "list them with `drkit runs` (the same repository)".to_owned(),
        _ => String::new(),
    }
}

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("DrkitError", py.get_type::<DrkitError>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    m.add("AlreadyExistsError", py.get_type::<AlreadyExistsError>())?;
    m.add("CorruptError", py.get_type::<CorruptError>())?;
    m.add("UnsupportedError", py.get_type::<UnsupportedError>())?;
    m.add("InvalidInputError", py.get_type::<InvalidInputError>())?;
    m.add("UnavailableError", py.get_type::<UnavailableError>())?;
    m.add(
        "PermissionDeniedError",
        py.get_type::<PermissionDeniedError>(),
    )?;
    m.add("TimeoutError", py.get_type::<TimeoutError>())?;
    m.add("ConflictError", py.get_type::<ConflictError>())?;
    m.add("WrongKeyError", py.get_type::<WrongKeyError>())?;
    m.add("ExternalError", py.get_type::<ExternalError>())?;
    Ok(())
}
