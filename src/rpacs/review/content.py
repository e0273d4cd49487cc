"""What the tag inventory is made of: an instance's entries, one per tag path and value.

Standard library only: the import's worker processes make these entries and its parent
process counts them, and unpickling them there must not load pydicom (see
:mod:`rpacs.ingest.pool`).
"""

from __future__ import annotations

from typing import NamedTuple

#: Values longer than this are cut; enough to recognise a value in the review.
VALUE_LENGTH = 128
#: Tag paths are cut to the index's column width (only absurdly deep nesting reaches it).
PATH_LENGTH = 200
#: VRs whose values are bytes: counted, never read.
BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})


class TagEntry(NamedTuple):
    """One tag path of one instance with one of its values ("" for binary and sequences)."""

    tag_path: str
    keyword_path: str
    vr: str
    value: str


#: One instance's entries in groups that share no tag path with each other — the entries
#: of one top-level element each, as :func:`~rpacs.review.entries.written_groups` makes
#: them, or one group for a whole data set. The instances of a series share most of their
#: groups (the same objects), so a batch is counted by group, not by entry.
InstanceEntries = tuple[frozenset[TagEntry], ...]
