"""drkit: disaster recovery as code.

Back up Postgres into a deduplicated, compressed, encrypted repository, restore it, and
prove the backup is good::

    import drkit

    repo = drkit.Repository.init("file:///var/backups/drkit", password="...")
    snap = repo.backup("postgres://app@db.internal/shop")
    repo.restore("latest", to="postgres://app@db.internal/shop_copy")
    assert repo.verify(snap["id"])["ok"]
"""

from drkit._native import Repository, TempCluster, __version__
from drkit.exceptions import (
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
    "Repository",
    "TempCluster",
    "TimeoutError",
    "UnavailableError",
    "UnsupportedError",
    "WrongKeyError",
    "__version__",
]
