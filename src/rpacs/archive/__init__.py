"""The project archive: the file store of de-identified instances and its index."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .content import StoredInstance
    from .index import IndexOutcome, IndexResult, record_instances
    from .store import FileStore, PutOutcome, link_unnamed, write_all, write_runs

__all__ = [
    "FileStore",
    "IndexOutcome",
    "IndexResult",
    "PutOutcome",
    "StoredInstance",
    "link_unnamed",
    "record_instances",
    "write_all",
    "write_runs",
]

# Lazy: the import's workers use the store without loading the index's SQLAlchemy.
__getattr__, __dir__ = lazy_exports(__name__, {
    ".content": ("StoredInstance",),
    ".index": ("IndexOutcome", "IndexResult", "record_instances"),
    ".store": ("FileStore", "PutOutcome", "link_unnamed", "write_all", "write_runs"),
})
