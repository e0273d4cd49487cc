"""Reviewers' "checked" marks: who looked at a tag path, when, and what it held then."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select

from ..audit import record_event
from ..db import Project, TagCheck, TagInventory
from ..errors import InvalidInputError
from ..installation import Installation


@dataclass(frozen=True)
class CheckMark:
    """A tag path's last check: by whom, when, and its counts at that moment."""

    checked_by: str
    checked_at: dt.datetime
    n_instances: int
    n_distinct: int


def mark_checked(inst: Installation, project: Project, tag_paths: Iterable[str],
                 reviewer: str) -> int:
    """Mark tag paths of ``project`` as checked by ``reviewer`` now; returns how many.

    Each mark keeps the path's counts, so a later import that adds values or instances to
    it makes it new again. Unknown paths are refused together, with nothing marked.
    """
    wanted = sorted(set(tag_paths))
    if not wanted:
        raise InvalidInputError("tag_paths: choose at least one tag to mark as checked")
    now = dt.datetime.now(dt.UTC)
    with inst.db.session() as session:
        rows = {row.tag_path: row for row in session.scalars(
            select(TagInventory).where(TagInventory.project_id == project.id,
                                       TagInventory.tag_path.in_(wanted)))}
        unknown = [p for p in wanted if p not in rows]
        if unknown:
            raise InvalidInputError([f"tag_paths: '{p}' is not in the inventory of "
                                     f"{project.acronym}" for p in unknown[:10]])
        for path in wanted:
            mark = session.get(TagCheck, (project.id, path))
            if mark is None:
                mark = TagCheck(project_id=project.id, tag_path=path)
                session.add(mark)
            mark.checked_by, mark.checked_at = reviewer, now
            mark.n_instances, mark.n_distinct = rows[path].n_instances, rows[path].n_distinct
        record_event(session, reviewer, "review.check", project.id, len(wanted),
                     tag_paths=wanted[:50])
    return len(wanted)


def tag_checks(inst: Installation, project: Project) -> dict[str, CheckMark]:
    """The check marks of ``project`` by tag path."""
    with inst.db.session() as session:
        marks = session.scalars(select(TagCheck).where(TagCheck.project_id == project.id))
        return {m.tag_path: CheckMark(m.checked_by, m.checked_at, m.n_instances, m.n_distinct)
                for m in marks}
