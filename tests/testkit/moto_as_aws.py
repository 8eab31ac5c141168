"""moto_server, with one behaviour made to match AWS for drkit's tests.

moto's PromoteReadReplica leaves the instance linked to its source forever; RDS unlinks a
promoted replica. drkit counts a replica as promoted only once RDS says it has no source,
so the tests run moto as AWS behaves. Arguments are moto_server's (-H HOST -p PORT).
"""
import sys
from moto.rds.models import RDSBackend

_promote = RDSBackend.promote_read_replica

def promote(self, db_kwargs):
    db = self.databases[db_kwargs["db_instance_identifier"]]
    source = db.source_db_instance_identifier
    db = _promote(self, db_kwargs)
    if source is not None:
        try:
            primary = self.find_db_from_id(source)
            for name in (db.db_instance_identifier, db.db_instance_arn):
                if name in primary.replicas:
                    primary.replicas.remove(name)
        except Exception:
            pass
        db.source_db_instance_identifier = None
        db.is_replica = False
    return db

RDSBackend.promote_read_replica = promote

from moto.server import main
sys.exit(main())
