"""What the quarantine knows about a received instance and how it lists a study."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any


class StudyState(enum.StrEnum):
    """Where a received study is on its way into a project."""

    #: Instances are still arriving (none for less than the quiet period).
    RECEIVING = "receiving"
    #: Quiet for the study timeout and not assigned automatically: waits for a human.
    COMPLETE = "complete"
    #: Assigned to a project, participant and event; imported, late arrivals follow.
    ASSIGNED = "assigned"
    #: Refused (a withdrawn patient); kept until the retention purge.
    REFUSED = "refused"


class InstanceState(enum.StrEnum):
    RECEIVED = "received"
    IMPORTED = "imported"
    REJECTED = "rejected"


@dataclass(frozen=True)
class InstanceHeader:
    """The few values of a received instance the quarantine indexes.

    Read from the header only (pixel data is never decoded). ``patient_key`` is the keyed
    hash of the original PatientID; the ID and the name are not kept.
    """

    sop_uid: str
    series_uid: str
    study_uid: str
    patient_key: str
    study_date: str = ""
    modality: str = ""
    study_description: str = ""
    accession_number: str = ""


@dataclass(frozen=True)
class Arrival:
    """Who sent an instance to whom, and when."""

    calling_ae: str
    called_ae: str
    at: dt.datetime


@dataclass(frozen=True)
class QuarantineEntry:
    """One study of ``rpacs quarantine list``: never the patient's name or ID."""

    study_uid: str
    state: str
    study_date: str
    modalities: str
    description: str
    series: int
    images: int
    accession_number: str
    calling_ae: str
    called_ae: str
    first_arrival: dt.datetime
    last_arrival: dt.datetime
    project: str | None
    participant: str | None
    event: str | None
    assigned_by: str | None
    note: str
    #: The study's number in the quarantine: how the web app names it (never by its UID).
    id: int = 0

    def _described(self) -> dict[str, Any]:
        """What every listing shows of the study itself."""
        return {
            "study_date": self.study_date,
            "modalities": self.modalities,
            "description": self.description,
            "series": self.series,
            "images": self.images,
            "accession_number": self.accession_number,
            "calling_ae": self.calling_ae,
            "called_ae": self.called_ae,
        }

    def as_dict(self) -> dict[str, Any]:
        """Everything, the StudyInstanceUID included: ``rpacs quarantine list --json``, for
        research IT on the server (``rpacs assign STUDY_UID`` names a study by it)."""
        return {
            "study_uid": self.study_uid,
            "state": self.state,
            **self._described(),
            "first_arrival": self.first_arrival.isoformat(),
            "last_arrival": self.last_arrival.isoformat(),
            "project": self.project,
            "participant": self.participant,
            "event": self.event,
            "assigned_by": self.assigned_by,
            "note": self.note,
        }

    def as_listed(self) -> dict[str, Any]:
        """The study as the web app lists it (the Assign page, ``GET /api/quarantine``):
        named by its number, never by its original UID, with what the page shows."""
        return {
            "id": self.id,
            "state": self.state,
            "note": self.note,
            "last_arrival": self.last_arrival.isoformat(),
            **self._described(),
        }


@dataclass(frozen=True)
class PurgeSummary:
    studies: int = 0
    files: int = 0
    orphan_folders: int = 0
