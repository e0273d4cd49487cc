"""The one exception hierarchy of rpacs.

Every message is written for the person who has to act on it: it names the file, field or
option at fault and the reason, and never contains a value from the original (identifying)
data — no names, IDs or dates of a patient.
"""

from __future__ import annotations


class RpacsError(Exception):
    """Base of every error rpacs raises on purpose."""

    #: Exit code the command line uses for this kind of error.
    exit_code: int = 1


class InvalidInputError(RpacsError):
    """A value given by the user (option, spec, config) is wrong.

    ``problems`` holds one message per problem, so a form or command line can show all of
    them at once instead of making the user fix them one at a time.
    """

    exit_code = 2

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class TooLargeError(InvalidInputError):
    """An upload or request body is larger than the server accepts (HTTP 413).

    Refused before it is read whole, so a large body never fills the server's memory.
    """


class NotFoundError(RpacsError):
    """A project, participant, study or other named thing does not exist (for this caller)."""

    exit_code = 2


class ConflictError(RpacsError):
    """The request contradicts what is already stored (a duplicate acronym, say).

    Like InvalidInputError it may hold several ``problems`` (the rows of a coupling list
    that clash with stored entries), shown together.
    """

    exit_code = 2

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class AuthenticationError(RpacsError):
    """A login or token was refused (wrong, unknown, throttled or locked).

    The message never says which part was wrong, so it cannot be used to find user names.
    """


class PermissionDeniedError(RpacsError):
    """The caller may see the thing but not do this to it (a member starting an export)."""


class DicomInputError(RpacsError):
    """One input file cannot be taken in: not DICOM, truncated, missing a required UID...

    ``source`` names the file (or ``archive.zip!member``); the message says why.
    """

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class DeidentificationError(RpacsError):
    """A dataset could not be de-identified safely, so it must not be stored."""


class StorageError(RpacsError):
    """The file store or index could not complete a write; nothing partial was kept."""


class WorkerError(RpacsError):
    """A worker process of an import failed or ended unexpectedly, and the run stopped.

    What was committed before stays consistent; running the same command again completes
    the work (files already written are found identical and adopted).
    """


class ResidualPhiError(RpacsError):
    """An export's scan found something identifying in what it wrote; nothing left."""


__all__ = [
    "AuthenticationError",
    "ConflictError",
    "DeidentificationError",
    "DicomInputError",
    "InvalidInputError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResidualPhiError",
    "RpacsError",
    "StorageError",
    "TooLargeError",
    "WorkerError",
]
