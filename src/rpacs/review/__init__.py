"""Review: the tag inventory of a project's data and what in it looks identifying."""

from .inventory import TagEntry, add_to_inventory, tag_entries

__all__ = ["TagEntry", "add_to_inventory", "tag_entries"]
