"""Import: from files, folders and zips into a project's de-identified archive."""

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
