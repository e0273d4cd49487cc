"""The review of a project: its tag inventory with counts, top values and flags.

It reads only the index, never the files: the inventory rows of the project, and per tag
path its most frequent values through the ``(project_id, tag_path, n_instances)`` index, so
it answers in well under a second however many instances the project holds.

Which values are checked for flags: every distinct value of a tag path when it has at most
:data:`FLAG_SCAN_VALUES` of them. Beyond that, the most frequent :data:`FLAG_SCAN_VALUES`,
plus — asked of the database directly, so no leak is missed however rare — every kind of
value that could be flagged for a person name, a PatientID or a date (values that are not
the project's own identifiers, dates outside the range), plus the :data:`FLAG_SCAN_VALUES`
rarest values of free-text tags, which is where a single leaked name would hide.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import exists, false, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from ..db import Participant, Project, Study, TagInventory, TagValue
from ..installation import Installation
from ..projects import get_project
from .flags import (
    DUMMY_VALUES,
    NUMBER_FORMS,
    ReviewContext,
    can_flag,
    flags_for,
    leaf_keyword,
)

#: Distinct values of a tag path read for its flags before the targeted queries take over.
FLAG_SCAN_VALUES = 500
#: Values fetched by each targeted query: enough to name the problem, not to list them all.
CANDIDATES = 20


@dataclass
class TagReview:
    """One tag path of a project's data: what it is, how common, its values and flags."""

    tag_path: str
    keyword_path: str
    vr: str
    n_instances: int
    n_distinct: int
    top_values: list[tuple[str, int]] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def tag(self) -> str:
        """The path in ``(gggg,eeee)`` notation, sequences joined by ``>``."""
        parts = []
        for part in self.tag_path.split("/"):
            tag, _, creator = part.partition("@")
            text = f"({tag[:4]},{tag[4:]})"
            parts.append(f"{text}@{creator}" if creator else text)
        return ">".join(parts)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tag"] = self.tag
        data["top_values"] = [{"value": v, "count": n} for v, n in self.top_values]
        return data


def _context(session: Session, project: Project) -> ReviewContext:
    participants = set(session.scalars(
        select(Participant.research_id).where(Participant.project_id == project.id)))
    study_ids = set(session.scalars(
        select(Study.study_id).distinct().where(Study.project_id == project.id,
                                                Study.study_id != "")))
    first, last = session.execute(
        select(func.min(Study.study_date), func.max(Study.study_date)).where(
            Study.project_id == project.id, Study.study_date != "")
    ).one()
    return ReviewContext(
        own_values=frozenset(participants | study_ids | set(project.events) | {project.acronym}),
        first_date=first or "",
        last_date=last or "",
    )


def _suspects(project: Project, row: TagInventory,
              context: ReviewContext) -> ColumnElement[bool] | None:
    """The SQL condition of values that may be flagged, for the kinds SQL can pick out."""
    value = TagValue.value
    if row.vr == "PN" or leaf_keyword(row.keyword_path) == "PatientID":
        constants = sorted(set(project.events) | {project.acronym} | DUMMY_VALUES)
        is_participant = exists().where(Participant.project_id == project.id,
                                        Participant.research_id == value)
        return (value != "") & value.not_in(constants) & ~is_participant
    if row.vr in ("DA", "DT"):
        window = context.date_range
        if window is None:
            return false()  # no study dates yet: no date is flagged
        day = func.substr(value, 1, 8)
        # Multi-valued dates are all read back, as any of their values may be the leak.
        return (value != "") & value.not_in(sorted(DUMMY_VALUES)) & or_(
            day < window[0], day > window[1], value.contains("\\", autoescape=True))
    if row.vr in NUMBER_FORMS:
        # A number, time or age holding a character none of them has (a letter, a comma),
        # in SQL both SQLite and PostgreSQL have: what is left when those characters are
        # trimmed from both ends is not empty. The forms themselves are checked in Python.
        allowed = _NUMBER_CHARACTERS[row.vr]
        return func.ltrim(func.rtrim(value, allowed), allowed) != ""
    return None


#: The characters the values of each of NUMBER_FORMS' VRs are made of.
_NUMBER_CHARACTERS = {"IS": "0123456789+-. \\", "DS": "0123456789+-.eE \\",
                      "TM": "0123456789.: \\", "AS": "0123456789DWMY\\"}


def _values_to_check(session: Session, project: Project, row: TagInventory,
                     context: ReviewContext, frequent: list[str]) -> list[str]:
    """The values a tag path's flags are computed from (see the module's docstring)."""
    if len(frequent) < FLAG_SCAN_VALUES:
        return frequent  # every distinct value
    where = (TagValue.project_id == project.id, TagValue.tag_path == row.tag_path)
    suspects = _suspects(project, row, context)
    if suspects is not None:
        extra = session.scalars(select(TagValue.value).where(*where, suspects)
                                .limit(CANDIDATES))
    else:
        extra = session.scalars(
            select(TagValue.value).where(*where)
            .order_by(TagValue.n_instances).limit(FLAG_SCAN_VALUES))
    return frequent + list(extra)


def review_project(inst: Installation, acronym: str, top: int = 5) -> list[TagReview]:
    """Every tag path of the project's data, in tag order, with its top values and flags."""
    project = get_project(inst, acronym)
    with inst.db.session() as session:
        context = _context(session, project)
        rows = session.scalars(
            select(TagInventory).where(TagInventory.project_id == project.id)
            .order_by(TagInventory.tag_path)
        ).all()
        reviews = []
        for row in rows:
            flaggable = can_flag(row.vr)
            # One more than shown: it tells whether a tie crosses the cut.
            limit = max(top + 1, FLAG_SCAN_VALUES) if flaggable else top + 1
            values = session.execute(
                select(TagValue.value, TagValue.n_instances)
                .where(TagValue.project_id == project.id, TagValue.tag_path == row.tag_path)
                # Ties are put in order here, among the rows read: in SQL that would sort
                # every value of a path where all are unique (a UID path: 100,000 rows).
                .order_by(TagValue.n_instances.desc())
                .limit(limit)
            ).all() if top > 0 or flaggable else []
            values.sort(key=lambda row: (-row[1], row[0]))
            top_values = [(v, n) for v, n in values[:top]]
            if top and len(values) > top and values[top][1] == values[top - 1][1]:
                # A tie across the cut: which of the tied rows the database returned first
                # is up to it. The tied ones are taken in value order instead, through the
                # (path, value) index, so that the same data always shows the same values.
                tied = values[top - 1][1]
                above = [(v, n) for v, n in top_values if n > tied]
                top_values = above + [(v, tied) for v in session.scalars(
                    select(TagValue.value)
                    .where(TagValue.project_id == project.id,
                           TagValue.tag_path == row.tag_path, TagValue.n_instances == tied)
                    .order_by(TagValue.value).limit(top - len(above)))]
            review = TagReview(
                tag_path=row.tag_path,
                keyword_path=row.keyword_path,
                vr=row.vr,
                n_instances=row.n_instances,
                n_distinct=row.n_distinct,
                top_values=top_values,
            )
            if flaggable:
                checked = _values_to_check(session, project, row, context,
                                           [v for v, _ in values])
                review.flags = flags_for(row.keyword_path, row.vr, checked, context)
            reviews.append(review)
    return reviews
