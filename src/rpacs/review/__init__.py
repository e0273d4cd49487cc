"""Review: the tag inventory of a project's data and what in it looks identifying."""

from .flags import ReviewContext, value_flags
from .inventory import TagEntry, add_to_inventory, remove_from_inventory, tag_entries
from .service import TagReview, review_project

__all__ = [
    "ReviewContext",
    "TagEntry",
    "TagReview",
    "add_to_inventory",
    "remove_from_inventory",
    "review_project",
    "tag_entries",
    "value_flags",
]
