"""The quarantine: received originals, grouped by study, waiting for their assignment."""

from .content import (
    Arrival,
    InstanceHeader,
    InstanceState,
    PurgeSummary,
    QuarantineEntry,
    StudyState,
)
from .service import Quarantine, as_utc, read_header, utcnow, visible_to
from .store import QuarantineStore

__all__ = [
    "Arrival",
    "InstanceHeader",
    "InstanceState",
    "PurgeSummary",
    "Quarantine",
    "QuarantineEntry",
    "QuarantineStore",
    "StudyState",
    "as_utc",
    "read_header",
    "utcnow",
    "visible_to",
]
