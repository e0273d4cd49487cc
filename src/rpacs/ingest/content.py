"""The outcome of an import or a folder-to-folder de-identification, and of each file in it.

Standard library only (with :class:`~rpacs.archive.StoredInstance`): the worker processes
send these back, and unpickling them must not load pydicom into the parent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..archive.content import StoredInstance


@dataclass(frozen=True)
class Rejection:
    """A file that was not taken in, and why (the reason never quotes its values)."""

    source: str
    reason: str


@dataclass(frozen=True)
class NotDicom:
    """A file that is not a DICOM instance (or is a DICOMDIR): skipped, not rejected."""

    source: str
    reason: str


#: What a worker makes of one source.
Outcome = StoredInstance | Rejection | NotDicom


@dataclass
class ImportSummary:
    """Counts of one run; ``ok`` when nothing was rejected."""

    stored: int = 0
    present: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    #: Files that are not DICOM instances, with why: a CD's viewer, a DICOMDIR, notes.
    skipped: list[NotDicom] = field(default_factory=list)
    studies: int = 0
    series: int = 0

    @property
    def not_dicom(self) -> int:
        return len(self.skipped)

    @property
    def ok(self) -> bool:
        return not self.rejected

    @property
    def total(self) -> int:
        return self.stored + self.present + self.not_dicom + len(self.rejected)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stored": self.stored,
            "present": self.present,
            "not_dicom": self.not_dicom,
            "rejected": [{"source": r.source, "reason": r.reason} for r in self.rejected],
            "skipped": [{"source": s.source, "reason": s.reason} for s in self.skipped],
            "studies": self.studies,
            "series": self.series,
            "ok": self.ok,
        }
