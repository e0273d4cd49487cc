"""Enumerations of the export spec: identity, dates, formats and package kinds."""

from __future__ import annotations

import enum


class IdentityMode(enum.Enum):
    """Which participant ID the package carries."""

    KEEP = "keep"  # the research ID, UIDs as in the archive
    RANDOM = "random"  # a new ID from the spec's pattern, every UID replaced again


class DatesMode(enum.Enum):
    """What happens to the (already project-shifted) dates of the archive."""

    KEEP = "keep"
    SHIFT = "shift"  # one further offset per spec, the same for every participant
    REMOVE = "remove"  # every DA and the date part of every DT emptied


class Format(enum.Enum):
    DICOM = "dicom"
    NIFTI = "nifti"


class PackageKind(enum.Enum):
    DIRECTORY = "directory"
    ZIP = "zip"
    ZIP_PER_PARTICIPANT = "zip-per-participant"
    ZIP_PER_STUDY = "zip-per-study"


class TagAction(enum.Enum):
    """What a rule under ``tags`` does to one attribute, in the order the rules are listed."""

    CLEAN = "clean"  # trim, collapse runs of spaces, ASCII only
    REPLACE = "replace"  # regular-expression substitution
    FROM_SIDECAR = "from_sidecar"  # a column of the --sidecar CSV
    REMOVE = "remove"
    SET = "set"


class JobState(enum.StrEnum):
    """Where an export job of the web app is (the API's ``state``)."""

    QUEUED = "queued"  # waiting for its process to start, or for the one before it
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # with a message; an interrupted job can be resumed
