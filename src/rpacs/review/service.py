"""The review of a project: its tag inventory with counts, top values and flags.

It reads only the index (two indexed queries and one per tag path for the top values), never
the files, so it answers quickly however many instances the project holds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select

from ..db import Participant, Project, Study, TagInventory, TagValue
from ..errors import NotFoundError
from ..installation import Installation
from .flags import ReviewContext, flags_for

#: How many distinct values of a tag are checked for flags (the most frequent ones, plus a
#: sample of the rare ones, which is where a leaked name hides).
FLAG_SCAN_VALUES = 200


@dataclass
class TagReview:
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


def review_project(inst: Installation, acronym: str, top: int = 5) -> list[TagReview]:
    """Every tag path of the project's data, in tag order, with its flags."""
    with inst.db.session() as session:
        project = session.scalar(select(Project).where(Project.acronym == acronym))
        if project is None:
            raise NotFoundError(f"no project '{acronym}' (see: rpacs project list)")
        names = set(session.scalars(
            select(Participant.research_id).where(Participant.project_id == project.id)))
        first, last = session.execute(
            select(func.min(Study.study_date), func.max(Study.study_date)).where(
                Study.project_id == project.id, Study.study_date != "")
        ).one()
        context = ReviewContext(
            allowed_names=frozenset(names | set(project.events)),
            first_date=first or "",
            last_date=last or "",
        )
        rows = session.scalars(
            select(TagInventory).where(TagInventory.project_id == project.id)
            .order_by(TagInventory.tag_path)
        ).all()
        reviews = []
        for row in rows:
            values = session.execute(
                select(TagValue.value, TagValue.n_instances)
                .where(TagValue.project_id == project.id, TagValue.tag_path == row.tag_path)
                .order_by(TagValue.n_instances.desc(), TagValue.value)
                .limit(max(top, FLAG_SCAN_VALUES))
            ).all()
            review = TagReview(
                tag_path=row.tag_path,
                keyword_path=row.keyword_path,
                vr=row.vr,
                n_instances=row.n_instances,
                n_distinct=row.n_distinct,
                top_values=[(v, n) for v, n in values[:top]],
            )
            review.flags = flags_for(row.keyword_path, row.vr, (v for v, _ in values),
                                     context)
            reviews.append(review)
    return reviews
