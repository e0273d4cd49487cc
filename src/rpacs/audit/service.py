"""Writing and reading the append-only audit log.

Events are written in the same transaction as the change they record, so a change and its
record succeed or fail together. Details hold names of users, projects and tags, never a
value from the images.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db import AuditEvent, Project
from ..installation import Installation

#: Most events one query returns; older ones are reached with ``before``.
PAGE = 500


def record_event(session: Session, actor: str, action: str, project_id: int | None = None,
                 count: int = 0, **details: Any) -> None:
    """Append one event to the log, inside the caller's transaction."""
    session.add(AuditEvent(actor=actor, action=action, project_id=project_id, count=count,
                           details=details))


@dataclass(frozen=True)
class AuditQuery:
    """Filters of the audit log; every one optional. ``action`` matches by prefix."""

    project_id: int | None = None
    actor: str = ""
    action: str = ""
    since: dt.date | None = None
    before_id: int | None = None
    limit: int = PAGE


def audit_events(inst: Installation, query: AuditQuery) -> list[dict[str, Any]]:
    """Events matching ``query``, newest first, as plain dictionaries."""
    stmt = (select(AuditEvent, Project.acronym)
            .outerjoin(Project, Project.id == AuditEvent.project_id)
            .order_by(AuditEvent.id.desc()).limit(max(1, min(query.limit, PAGE))))
    if query.project_id is not None:
        stmt = stmt.where(AuditEvent.project_id == query.project_id)
    if query.actor:
        stmt = stmt.where(AuditEvent.actor == query.actor)
    if query.action:
        stmt = stmt.where(AuditEvent.action.startswith(query.action, autoescape=True))
    if query.since is not None:
        start = dt.datetime.combine(query.since, dt.time(), tzinfo=dt.UTC)
        stmt = stmt.where(AuditEvent.at >= start)
    if query.before_id is not None:
        stmt = stmt.where(AuditEvent.id < query.before_id)
    with inst.db.session() as session:
        rows = session.execute(stmt).all()
    return [
        {"id": event.id, "at": event.at.isoformat() if event.at else None,
         "actor": event.actor, "action": event.action, "project": acronym,
         "count": event.count, "details": event.details or {}}
        for event, acronym in rows
    ]
