"""Review: the tag inventory of a project's data and what in it looks identifying."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .checks import CheckMark, mark_checked, tag_checks
    from .content import InstanceEntries, TagEntry
    from .entries import file_meta_entries, tag_entries, written_groups
    from .flags import NUMBER_FORMS, ReviewContext, value_flags
    from .inventory import add_to_inventory, remove_from_inventory
    from .package import PackageReview, record_zip_review, review_zip
    from .service import TagReview, review_project
    from .table import ReviewFilter, ReviewRow, filter_rows, review_table
    from .values import TagValues, tag_values

__all__ = [
    "NUMBER_FORMS",
    "CheckMark",
    "InstanceEntries",
    "PackageReview",
    "ReviewContext",
    "ReviewFilter",
    "ReviewRow",
    "TagEntry",
    "TagReview",
    "TagValues",
    "add_to_inventory",
    "file_meta_entries",
    "filter_rows",
    "mark_checked",
    "record_zip_review",
    "remove_from_inventory",
    "review_project",
    "review_table",
    "review_zip",
    "tag_checks",
    "tag_entries",
    "tag_values",
    "value_flags",
    "written_groups",
]

# Lazy: the import's workers read entries (pydicom) without the counting's SQLAlchemy, and
# its parent counts them without pydicom.
__getattr__, __dir__ = lazy_exports(__name__, {
    ".checks": ("CheckMark", "mark_checked", "tag_checks"),
    ".content": ("InstanceEntries", "TagEntry"),
    ".entries": ("file_meta_entries", "tag_entries", "written_groups"),
    ".flags": ("NUMBER_FORMS", "ReviewContext", "value_flags"),
    ".inventory": ("add_to_inventory", "remove_from_inventory"),
    ".package": ("PackageReview", "record_zip_review", "review_zip"),
    ".service": ("TagReview", "review_project"),
    ".table": ("ReviewFilter", "ReviewRow", "filter_rows", "review_table"),
    ".values": ("TagValues", "tag_values"),
})
