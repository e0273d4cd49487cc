"""The project archive: the file store of de-identified instances and its index."""

from .content import StoredInstance
from .index import IndexOutcome, IndexResult, record_instances
from .store import FileStore, PutOutcome, link_unnamed

__all__ = [
    "FileStore",
    "IndexOutcome",
    "IndexResult",
    "PutOutcome",
    "StoredInstance",
    "link_unnamed",
    "record_instances",
]
