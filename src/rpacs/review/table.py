"""The Review page's table: the inventory filtered, sorted and joined with check marks.

Pure functions over :class:`TagReview` rows, so the review of a project and the review of
an uploaded zip are filtered and sorted alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..db import Project
from ..installation import Installation
from .checks import CheckMark, tag_checks
from .service import TagReview, review_project

#: The columns the table can be sorted by, and the key of each.
SORT_KEYS: dict[str, Callable[[ReviewRow], Any]] = {
    "tag": lambda r: r.review.tag_path,
    "keyword": lambda r: r.review.keyword_path.lower(),
    "vr": lambda r: (r.review.vr, r.review.tag_path),
    "instances": lambda r: (r.review.n_instances, r.review.tag_path),
    "distinct": lambda r: (r.review.n_distinct, r.review.tag_path),
    "flags": lambda r: (len(r.review.flags), r.review.tag_path),
}
NESTING = ("any", "nested", "top")


@dataclass(frozen=True)
class ReviewFilter:
    """What the reviewer asked to see; every default shows everything in tag order."""

    #: Part of a keyword, a tag ``(0010,0010)``/``00100010`` or a tag path, any case.
    query: str = ""
    flagged_only: bool = False
    #: ``nested``: only tags inside sequences; ``top``: only top-level tags.
    nesting: str = "any"
    #: Hide tags checked since their last change.
    new_only: bool = False
    sort: str = "tag"
    descending: bool = False

    def problems(self) -> list[str]:
        found = []
        if self.sort not in SORT_KEYS:
            found.append(f"sort: '{self.sort}' is not one of {', '.join(SORT_KEYS)}")
        if self.nesting not in NESTING:
            found.append(f"nesting: '{self.nesting}' is not one of {', '.join(NESTING)}")
        return found


@dataclass(frozen=True)
class ReviewRow:
    """One tag path of the table with its check mark (None: never checked)."""

    review: TagReview
    check: CheckMark | None = None

    @property
    def is_new(self) -> bool:
        """Never checked, or more instances or values since the check."""
        check = self.check
        return check is None or (check.n_instances, check.n_distinct) != (
            self.review.n_instances, self.review.n_distinct)

    @property
    def nested(self) -> bool:
        return "/" in self.review.tag_path

    def as_dict(self) -> dict[str, Any]:
        data = self.review.as_dict()
        data["nested"] = self.nested
        data["new"] = self.is_new
        data["checked"] = None if self.check is None else {
            "by": self.check.checked_by, "at": self.check.checked_at.isoformat()}
        return data


def _matches(review: TagReview, needle: str) -> bool:
    if not needle:
        return True
    compact = needle.replace("(", "").replace(")", "").replace(",", "").replace(" ", "")
    haystacks = (review.keyword_path.lower(), review.tag.lower(), review.tag_path.lower())
    return any(needle in h for h in haystacks) or (
        len(compact) >= 4 and compact in review.tag_path.lower())


def filter_rows(reviews: Iterable[TagReview], checks: dict[str, CheckMark],
                wanted: ReviewFilter) -> list[ReviewRow]:
    """The rows ``wanted`` asks for, in its order."""
    needle = wanted.query.strip().lower()
    rows = []
    for review in reviews:
        row = ReviewRow(review, checks.get(review.tag_path))
        if ((wanted.flagged_only and not review.flags)
                or (wanted.nesting == "nested" and not row.nested)
                or (wanted.nesting == "top" and row.nested)
                or (wanted.new_only and not row.is_new)
                or not _matches(review, needle)):
            continue
        rows.append(row)
    rows.sort(key=SORT_KEYS.get(wanted.sort, SORT_KEYS["tag"]), reverse=wanted.descending)
    return rows


def review_table(inst: Installation, project: Project, wanted: ReviewFilter) -> list[ReviewRow]:
    """The review of ``project`` as the Review page shows it."""
    return filter_rows(review_project(inst, project.acronym), tag_checks(inst, project), wanted)
