"""Import: from files, folders and zips into a project's de-identified archive."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .content import ImportSummary, Rejection
    from .service import deidentify_tree, import_paths, studies_of_patient
    from .sources import RefusedSource, Source, iter_sources
    from .worker import patient_key

__all__ = [
    "ImportSummary",
    "RefusedSource",
    "Rejection",
    "Source",
    "deidentify_tree",
    "import_paths",
    "iter_sources",
    "patient_key",
    "studies_of_patient",
]

# Lazy: the worker processes load the worker side (pydicom) without the service's
# SQLAlchemy, and the parent the service without the worker's pydicom.
__getattr__, __dir__ = lazy_exports(__name__, {
    ".content": ("ImportSummary", "Rejection"),
    ".service": ("deidentify_tree", "import_paths", "studies_of_patient"),
    ".sources": ("RefusedSource", "Source", "iter_sources"),
    ".worker": ("patient_key",),
})
