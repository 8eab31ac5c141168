"""drkit: disaster recovery as code.

Back up Postgres into a deduplicated, compressed, encrypted repository, restore it, and
prove the backup is good::

    import drkit

    repo = drkit.Repository.init("file:///var/backups/drkit", password="...")
    snap = repo.backup("postgres://app@db.internal/shop")
    repo.restore("latest", to="postgres://app@db.internal/shop_copy")
    assert repo.verify(snap["id"])["ok"]
"""

from drkit import exceptions
from drkit._native import Kubernetes, Rds, Repository, Route53, TempCluster, __version__, failover_drill, pg_ready, s3_check_bucket, s3_sync, s3_verify_replica, secretsmanager_get, sql_exec, sql_query
from drkit.exceptions import *  # noqa: F403 (every exception kind, listed in exceptions.__all__)
from drkit.runbooks import Drill, Run, Runbook, action, report, resume
from drkit.runbooks import check as check_runbook
from drkit.runbooks import schema as runbook_schema

__all__ = ["Drill", "Kubernetes", "Rds", "Repository", "Route53", "Run", "Runbook", "TempCluster", "__version__", "action", "check_runbook", "failover_drill", "pg_ready", "report", "resume", "runbook_schema", "s3_check_bucket", "s3_sync", "s3_verify_replica", "secretsmanager_get", "sql_exec", "sql_query", *exceptions.__all__]
