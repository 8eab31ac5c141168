"""drkit's exceptions: one per error kind, all under DrkitError."""

from drkit._native import (
    AlreadyExistsError,
    ConflictError,
    CorruptError,
    DrkitError,
    ExternalError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    TimeoutError,
    UnavailableError,
    UnsupportedError,
    WrongKeyError,
)

__all__ = [
    "AlreadyExistsError",
    "ConflictError",
    "CorruptError",
    "DrkitError",
    "ExternalError",
    "InvalidInputError",
    "NotFoundError",
    "PermissionDeniedError",
    "TimeoutError",
    "UnavailableError",
    "UnsupportedError",
    "WrongKeyError",
]
