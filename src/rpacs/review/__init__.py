"""Review: the tag inventory of a project's data and what in it looks identifying."""

from .checks import CheckMark, mark_checked, tag_checks
from .flags import ReviewContext, value_flags
from .inventory import (
    InstanceEntries,
    TagEntry,
    add_to_inventory,
    remove_from_inventory,
    tag_entries,
    written_groups,
)
from .package import PackageReview, record_zip_review, review_zip
from .service import TagReview, review_project
from .table import ReviewFilter, ReviewRow, filter_rows, review_table
from .values import TagValues, tag_values

__all__ = [
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
