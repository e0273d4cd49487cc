"""The outcome of an import or a folder-to-folder de-identification."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Rejection:
    """A file that was not taken in, and why (the reason never quotes its values)."""

    source: str
    reason: str


@dataclass
class ImportSummary:
    """Counts of one run; ``ok`` when nothing was rejected."""

    stored: int = 0
    present: int = 0
    not_dicom: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    studies: int = 0
    series: int = 0

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
            "studies": self.studies,
            "series": self.series,
            "ok": self.ok,
        }
