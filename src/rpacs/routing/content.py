"""What an assignment is and why it was made."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Reason(enum.StrEnum):
    """Why a study went to its project: recorded on the study and in the audit log."""

    USER = "user"
    RULE = "rule"
    COUPLING_LIST = "coupling-list"
    AUTO_ID = "auto-id"


@dataclass(frozen=True)
class Assignment:
    """Project, participant and event for a received study, and the reason."""

    project_id: int
    participant: str
    event: str
    reason: Reason
    #: The rule's number, or the user's name: what the audit log shows beside the reason.
    detail: str = ""


@dataclass(frozen=True)
class Outcome:
    """What became of a study: assigned (and how much was imported), waiting or refused."""

    state: str
    note: str = ""
    reason: str | None = None
    imported: int = 0
    rejected: int = 0
