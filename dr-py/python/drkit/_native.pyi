from os import PathLike
from typing import Any, Literal, Sequence, final

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
__version__: str

class DrkitError(Exception): ...
class NotFoundError(DrkitError): ...
class AlreadyExistsError(DrkitError): ...
class CorruptError(DrkitError): ...
class UnsupportedError(DrkitError): ...
class InvalidInputError(DrkitError): ...
class UnavailableError(DrkitError): ...
class PermissionDeniedError(DrkitError): ...
class TimeoutError(DrkitError): ...
class ConflictError(DrkitError): ...
class WrongKeyError(DrkitError): ...
class ExternalError(DrkitError): ...

@final
class Repository:
    @staticmethod
    def init(
        url: str,
        *,
        password: str | None = None,
        password_file: str | PathLike[str] | None = None,
        key_file: str | PathLike[str] | None = None,
        encrypt: bool = True,
        compression_level: int = 3,
    ) -> Repository: ...
    @staticmethod
    def open(
        url: str,
        *,
        password: str | None = None,
        password_file: str | PathLike[str] | None = None,
        key_file: str | PathLike[str] | None = None,
    ) -> Repository: ...
    @property
    def url(self) -> str: ...
    @property
    def encrypted(self) -> bool: ...
    def backup(
        self,
        dsn: str,
        *,
        tags: dict[str, str] | None = None,
        skip_globals: bool = False,
        row_counts: bool = True,
        lock_wait_timeout: float | None = None,
    ) -> dict[str, Any]: ...
    def snapshots(self) -> list[dict[str, Any]]: ...
    def restore(
        self,
        snapshot: str,
        to: str,
        *,
        mode: Literal["auto", "create", "clean", "swap"] = "auto",
        jobs: int | None = None,
        globals: bool = False,
        no_owner: bool = False,
        terminate_connections: bool = False,
    ) -> dict[str, Any]: ...
    def verify(self, snapshot: str = "latest") -> dict[str, Any]: ...
    def verify_restore(
        self, snapshot: str, server: str, *, checks: Sequence[str] | None = None, keep: bool = False
    ) -> dict[str, Any]: ...

@final
class TempCluster:
    def __new__(cls, *, password: str | None = None) -> TempCluster: ...
    @property
    def port(self) -> int: ...
    def dsn(self, db: str = "postgres") -> str: ...
    def stop(self) -> None: ...
    def __enter__(self) -> TempCluster: ...
    def __exit__(self, *args: object) -> bool: ...
