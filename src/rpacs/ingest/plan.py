"""The work plan of one run: everything a worker needs, made by the parent process.

Without pydicom or SQLAlchemy, as data only: the parent builds it without loading the
de-identification engine, and it is pickled into every task sent to a worker process
(:mod:`rpacs.ingest.pool`), which makes its :class:`~rpacs.ingest.worker.Worker` from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..archive.store import FileStore
    from ..deid.identity import Identity


@dataclass(frozen=True)
class WorkPlan:
    """Everything a worker needs, fixed for one run (one project, participant and event)."""

    #: The project's own de-identification profile as its YAML text, None for the default:
    #: the worker makes the Profile (which needs pydicom's data dictionary), not the parent.
    profile_yaml: str | None
    project_secret: bytes
    identity: Identity
    date_offset_days: int
    installation_secret: bytes
    store: FileStore
    #: Prefix of stored paths: the project acronym in the archive, "" for a folder export.
    path_prefix: str
    #: Whether outcomes feed the index (import): then each carries its hash, index fields
    #: and tag inventory. A folder-to-folder run needs none of them and skips that work.
    index: bool = True
