from os import PathLike
from typing import Any, Literal, Mapping, Sequence, final

__all__ = [
    "AlreadyExistsError",
    "ConflictError",
    "CorruptError",
    "DrkitError",
    "ExternalError",
    "InvalidInputError",
    "NotFoundError",
    "PermissionDeniedError",
    "Rds",
    "Repository",
    "Kubernetes",
    "Route53",
    "Runbook",
    "TempCluster",
    "TimeoutError",
    "UnavailableError",
    "UnsupportedError",
    "WrongKeyError",
    "check_runbook",
    "failover_drill",
    "report",
    "pg_ready",
    "resume",
    "runbook_schema",
    "s3_check_bucket",
    "s3_sync",
    "s3_verify_replica",
    "secretsmanager_get",
    "sql_exec",
    "sql_query",
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
        format: Literal["streams", "pg-dump"] = "streams",
        jobs: int | None = None,
        split_bytes: int | None = None,
    ) -> dict[str, Any]: ...
    def backup_files(
        self,
        paths: Sequence[str | PathLike[str]],
        *,
        exclude: Sequence[str] | None = None,
        one_file_system: bool = False,
        tags: Mapping[str, str] | None = None,
    ) -> dict[str, Any]: ...
    def restore_files(
        self,
        snapshot: str,
        to: str | PathLike[str],
        *,
        paths: Sequence[str] | None = None,
        overwrite: bool = False,
        source: str | None = None,
    ) -> dict[str, Any]: ...
    def git_bundle(
        self, path: str | PathLike[str], *, tags: Mapping[str, str] | None = None
    ) -> dict[str, Any]: ...
    def git_restore(
        self,
        snapshot: str,
        to: str | PathLike[str],
        *,
        bare: bool = False,
        source: str | None = None,
    ) -> dict[str, Any]: ...
    def backup_redis(
        self, url: str, *, tags: Mapping[str, str] | None = None, timeout: float = 300.0
    ) -> dict[str, Any]: ...
    def restore_redis(
        self,
        snapshot: str,
        *,
        url: str | None = None,
        data_dir: str | PathLike[str] | None = None,
        dbfilename: str = "dump.rdb",
        overwrite: bool = False,
        source: str | None = None,
        timeout: float = 300.0,
    ) -> dict[str, Any]: ...
    def snapshots(self) -> list[dict[str, Any]]: ...
    def restore(
        self,
        snapshot: str,
        to: str,
        *,
        source: str | None = None,
        before: str | None = None,
        tags: Mapping[str, str] | None = None,
        random_within: str | None = None,
        mode: Literal["auto", "create", "clean", "swap"] = "auto",
        jobs: int | None = None,
        globals: bool = False,
        create_roles: bool = False,
        no_owner: bool = False,
        no_privileges: bool = False,
        terminate_connections: bool = False,
    ) -> dict[str, Any]: ...
    def verify(self, snapshot: str | None = "latest") -> dict[str, Any]: ...
    def verify_restore(
        self,
        snapshot: str,
        server: str,
        *,
        source: str | None = None,
        checks: Sequence[str] | None = None,
        keep: bool = False,
    ) -> dict[str, Any] | None: ...
    def copy_to(
        self,
        to: str,
        *,
        snapshots: Sequence[str] | None = None,
        init: bool = False,
        password: str | None = None,
        password_file: str | PathLike[str] | None = None,
        key_file: str | PathLike[str] | None = None,
        wal: Literal["all", "needed", "none"] | None = None,
    ) -> dict[str, Any]: ...
    def prune(
        self,
        *,
        keep_last: int = 0,
        keep_daily: int = 0,
        keep_weekly: int = 0,
        keep_monthly: int = 0,
        keep_yearly: int = 0,
        keep_within: str | None = None,
        time_zone: str = ...,
        grace: str = ...,
        dry_run: bool = False,
    ) -> dict[str, Any]: ...
    def status(self, objectives: Sequence[dict[str, str]] | None = None) -> dict[str, Any]: ...
    def add_key(
        self,
        *,
        key_file: str | PathLike[str] | None = None,
        generate_key_file: str | PathLike[str] | None = None,
        password: str | None = None,
        password_file: str | PathLike[str] | None = None,
        label: str = "",
    ) -> dict[str, Any]: ...
    def key_slots(self) -> list[dict[str, Any]]: ...
    def remove_key(self, id: str) -> None: ...
    def basebackup(self, dsn: str, *, archive_timeout: float = 600.0) -> dict[str, Any]: ...
    def wal_verify(self) -> dict[str, Any]: ...
    def pitr(
        self,
        pgdata: str | PathLike[str],
        *,
        target_time: str | None = None,
        target_lsn: str | None = None,
        target_name: str | None = None,
        latest: bool = False,
        snapshot: str | None = None,
        start: bool = False,
        settings: Mapping[str, str] | None = None,
        timeout: float = 3600.0,
        tablespace_mapping: Mapping[str | PathLike[str], str | PathLike[str]] | None = None,
        check_dsn: str | None = None,
        checks: Sequence[str] | None = None,
        drkit: str | PathLike[str] | None = None,
    ) -> dict[str, Any]: ...

@final
class Rds:
    def __new__(
        cls,
        *,
        region: str | None = None,
        endpoint: str | None = None,
        profile: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> Rds: ...
    def describe(self, id: str) -> dict[str, Any]: ...
    def promote(self, id: str, *, timeout: float = 1800.0) -> dict[str, Any]: ...
    def create_read_replica(
        self,
        source: str,
        id: str,
        *,
        instance_class: str | None = None,
        token: str | None = None,
        timeout: float = 1800.0,
    ) -> dict[str, Any]: ...
    def restore_to_point_in_time(
        self,
        source: str,
        to: str,
        *,
        time: str | None = None,
        token: str | None = None,
        timeout: float = 1800.0,
    ) -> dict[str, Any]: ...
    def create_snapshot(self, id: str, name: str, *, timeout: float = 1800.0) -> dict[str, Any]: ...
    def snapshots(self, id: str | None = None) -> list[dict[str, Any]]: ...
    def copy_snapshot(self, source: str, to: str, *, timeout: float = 1800.0) -> dict[str, Any]: ...
    def restore_snapshot(self, snapshot: str, to: str, *, timeout: float = 1800.0) -> dict[str, Any]: ...

@final
class Kubernetes:
    def __new__(
        cls,
        *,
        context: str | None = None,
        kubeconfig: str | PathLike[str] | None = None,
        namespace: str | None = None,
        in_cluster: bool = False,
    ) -> Kubernetes: ...
    @property
    def context(self) -> str: ...
    def scale(
        self,
        workload: str,
        replicas: int,
        *,
        namespace: str | None = None,
        wait: bool = False,
        timeout: float = 300.0,
        dry_run: bool = False,
    ) -> dict[str, Any]: ...
    def wait_ready(self, workload: str, *, namespace: str | None = None, timeout: float = 300.0) -> dict[str, Any]: ...
    def rollout_undo(
        self, workload: str, *, to_revision: int | None = None, namespace: str | None = None, dry_run: bool = False
    ) -> dict[str, Any]: ...
    def rollout_restart(self, workload: str, *, namespace: str | None = None) -> dict[str, Any]: ...
    def set_env(
        self,
        workload: str,
        env: dict[str, str | None],
        *,
        container: str | None = None,
        namespace: str | None = None,
        dry_run: bool = False,
    ) -> Any: ...
    def configmap_set(
        self,
        name: str,
        *,
        set: dict[str, str] | None = None,
        remove: list[str] | None = None,
        namespace: str | None = None,
        dry_run: bool = False,
    ) -> Any: ...
    def maintenance(
        self,
        ingress: str,
        on: bool,
        *,
        service: str = "drkit-maintenance",
        port: int = 80,
        image: str | None = None,
        namespace: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]: ...
    def secret_set(
        self,
        name: str,
        *,
        set: dict[str, str] | None = None,
        rotate: list[str] | None = None,
        create: bool = False,
        restart: bool = True,
        namespace: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]: ...
    def export(
        self,
        repo: Repository,
        *,
        namespace: str | None = None,
        namespaces: list[str] | None = None,
        cluster: bool = False,
        kinds: list[str] | None = None,
        selector: str | None = None,
    ) -> dict[str, Any]: ...
    def apply(
        self,
        repo: Repository | None = None,
        *,
        snapshot: str | None = None,
        source: str | None = None,
        files: list[str | PathLike[str]] | None = None,
        namespace: str | None = None,
        kinds: list[str] | None = None,
        selector: str | None = None,
        namespace_map: dict[str, str] | None = None,
        dry_run: bool = False,
        wait: bool = False,
        timeout: float = 600.0,
    ) -> dict[str, Any]: ...
    def secret_restore(self, name: str, *, namespace: str | None = None) -> dict[str, Any]: ...
    def namespace_create(self, name: str, *, labels: dict[str, str] | None = None) -> dict[str, Any]: ...
    def namespace_delete(self, name: str, *, timeout: float = 300.0) -> dict[str, Any]: ...
    def wait_available(self, *, namespace: str | None = None, timeout: float = 300.0) -> list[str]: ...
    def pod_delete(self, name: str, *, namespace: str | None = None, timeout: float = 300.0) -> dict[str, Any]: ...
    def logs(self, name: str, *, namespace: str | None = None, tail: int = 50) -> dict[str, Any]: ...

@final
class Route53:
    def __new__(
        cls,
        *,
        endpoint: str | None = None,
        profile: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> Route53: ...
    def route(self, zone: str, name: str, *, type: str = ...) -> dict[str, Any]: ...
    def failover(
        self, zone: str, name: str, to: str, *, type: str = ..., timeout: float = 600.0
    ) -> dict[str, Any]: ...
    def set_weights(
        self, zone: str, name: str, weights: dict[str, int], *, type: str = ..., timeout: float = 600.0
    ) -> dict[str, Any]: ...
    def set_values(
        self, zone: str, name: str, values: Sequence[str], *, type: str = ..., timeout: float = 600.0
    ) -> dict[str, Any]: ...
    def restore(self, zone: str, previous: dict[str, Any], *, timeout: float = 600.0) -> dict[str, Any]: ...
    def export_zone(self, repo: Repository, zone: str) -> dict[str, Any]: ...
    def import_zone(
        self,
        repo: Repository,
        snapshot: str,
        *,
        zone: str | None = None,
        delete: bool = False,
        dry_run: bool = False,
        source: str | None = None,
        timeout: float = 600.0,
    ) -> dict[str, Any]: ...
    def create_health_check(
        self,
        *,
        kind: str | None = None,
        fqdn: str | None = None,
        ip: str | None = None,
        port: int | None = None,
        path: str | None = None,
        interval: int | None = None,
        failure_threshold: int | None = None,
    ) -> str: ...
    def health_check(self, id: str) -> dict[str, Any]: ...

@final
class TempCluster:
    def __new__(cls, *, password: str | None = None, settings: Mapping[str, str] | None = None) -> TempCluster: ...
    @property
    def port(self) -> int: ...
    def dsn(self, db: str = "postgres") -> str: ...
    def start_replica(self) -> TempCluster: ...
    def stop(self) -> None: ...
    def __enter__(self) -> TempCluster: ...
    def __exit__(self, *args: object) -> bool: ...

@final
class Runbook:
    @staticmethod
    def load(path: str | PathLike[str]) -> Runbook: ...
    @staticmethod
    def from_dict(runbook: Any) -> Runbook: ...
    @property
    def name(self) -> str: ...
    def plan(
        self,
        *,
        repo: Repository | None = None,
        vars: Any | None = None,
        mode: str = "planned",
        actions: Any | None = None,
    ) -> dict[str, Any]: ...
    def run(
        self,
        *,
        repo: Repository | None = None,
        vars: Any | None = None,
        mode: str = "planned",
        yes: bool = False,
        approve: Sequence[str] | None = None,
        actions: Any | None = None,
    ) -> dict[str, Any]: ...
    def resume_or_start(
        self,
        schedule: str,
        *,
        occurrence: str | None = None,
        repo: Repository | None = None,
        vars: Any | None = None,
        mode: str = "planned",
        yes: bool = False,
        approve: Sequence[str] | None = None,
        actions: Any | None = None,
    ) -> dict[str, Any]: ...
    def drill(
        self,
        *,
        repo: Repository | None = None,
        vars: Any | None = None,
        yes: bool = False,
        keep_canary: bool = False,
        report_html: str | PathLike[str] | None = None,
        metrics_csv: str | PathLike[str] | None = None,
        actions: Any | None = None,
    ) -> dict[str, Any]: ...

def report(run_id: str, *, repo: Repository | None = None, format: str = "json", template: str | None = None) -> Any: ...
def failover_drill(*, orders: int = 10000, write_for: float = 2.0, keep_repo: bool = False) -> dict[str, Any]: ...
def s3_check_bucket(
    bucket: str, *, versioning: bool = True, replicates_to: str | None = None, lifecycle: bool = False
) -> dict[str, Any]: ...
def s3_sync(
    source: str, destination: str, *, delete: bool = False, dry_run: bool = False, parallel: int = 8
) -> dict[str, Any]: ...
def s3_verify_replica(source: str, replica: str, *, list: int = 20) -> dict[str, Any]: ...
def secretsmanager_get(
    secret: str,
    *,
    key: str | None = None,
    stage: str | None = None,
    version_id: str | None = None,
    region: str | None = None,
    endpoint: str | None = None,
    profile: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
) -> dict[str, Any]: ...
def check_runbook(path: str | PathLike[str], *, actions: Any | None = None) -> dict[str, Any]: ...
def runbook_schema(*, actions: Any | None = None) -> dict[str, Any]: ...
def resume(
    run_id: str,
    *,
    repo: Repository | None = None,
    vars: Any | None = None,
    approve: Sequence[str] | None = None,
    rerun: Sequence[str] | None = None,
    skip: Sequence[str] | None = None,
    take_over: bool = False,
    actions: Any | None = None,
) -> dict[str, Any]: ...
def sql_exec(url: str, sql: Sequence[str], *, transaction: bool | None = None) -> dict[str, Any]: ...
def sql_query(url: str, sql: str, *, limit: int = 100) -> dict[str, Any]: ...
def pg_ready(url: str, *, timeout: float = 60.0) -> dict[str, Any]: ...
