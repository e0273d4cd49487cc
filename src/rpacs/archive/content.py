"""What the index learns about one de-identified instance (no original values)."""

from __future__ import annotations

from dataclasses import dataclass

from ..review import InstanceEntries


@dataclass(frozen=True)
class StoredInstance:
    """One de-identified instance as written to the store, with the fields users filter on.

    Made in the import's worker processes and committed to the index in batches by the
    parent. ``patient_key`` is the keyed hash of the original PatientID; the ID itself never
    leaves the worker.
    """

    source: str
    relative_path: str
    size: int
    sha256: str
    patient_key: str
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str = ""
    transfer_syntax: str = ""
    study_id: str = ""
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    modality: str = ""
    series_number: int | None = None
    series_description: str = ""
    body_part: str = ""
    series_date: str = ""
    instance_number: int | None = None
    rows: int | None = None
    columns: int | None = None
    frames: int | None = None
    #: The instance's tag inventory entries, in groups shared with the other instances of
    #: its series (see :data:`~rpacs.review.InstanceEntries`).
    tag_groups: InstanceEntries = ()
    #: Whether this import wrote the file (rather than found it there): a file the index
    #: then rejects is removed again, so that a refused assignment leaves nothing behind.
    created: bool = False
