"""Remote AEs: the DICOM nodes registered per project for query and retrieve.

A remote sees the projects it is registered for and no other; an AE title registered for
no project gets nothing. The registration also gives the host and port a C-MOVE sends to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import delete, select

from ..db import AuditEvent, Project, RemoteAE
from ..errors import ConflictError, InvalidInputError, NotFoundError
from ..installation import Installation
from ..projects import get_project

#: PS3.5 AE: 1-16 characters of the default repertoire without backslash or control
#: characters; leading and trailing spaces are not significant.
_AE_TITLE = re.compile(r"[\x20-\x5b\x5d-\x7e]{1,16}")


def check_ae_title(value: str, option: str) -> str:
    """The AE title without its insignificant spaces, or InvalidInputError."""
    title = (value or "").strip()
    if not title or not _AE_TITLE.fullmatch(title):
        raise InvalidInputError(
            f"{option}: an AE title is 1-16 printable ASCII characters without '\\'")
    return title


def _check_address(host: str, port: int) -> list[str]:
    problems = []
    if not host or len(host) > 255 or any(c.isspace() for c in host):
        problems.append("HOST: a host name or IP address is required")
    if not 1 <= port <= 65535:
        problems.append("PORT: must be between 1 and 65535")
    return problems


@dataclass(frozen=True)
class Remote:
    project: str
    ae_title: str
    host: str
    port: int

    def as_dict(self) -> dict[str, object]:
        return {"project": self.project, "ae_title": self.ae_title, "host": self.host,
                "port": self.port}


@dataclass(frozen=True)
class Destination:
    """Where a C-MOVE sends, and the projects whose data may be sent there."""

    host: str
    port: int
    projects: set[int]


def add_remote(inst: Installation, acronym: str, ae_title: str, host: str, port: int,
               actor: str = "cli") -> Remote:
    """Register ``ae_title`` at ``host:port`` for the project (ConflictError if it is)."""
    problems = []
    try:
        ae_title = check_ae_title(ae_title, "AE_TITLE")
    except InvalidInputError as exc:
        problems.extend(exc.problems)
    problems.extend(_check_address(host, port))
    if problems:
        raise InvalidInputError(problems)
    project = get_project(inst, acronym)
    with inst.db.session() as session:
        exists = session.scalar(select(RemoteAE).where(RemoteAE.project_id == project.id,
                                                       RemoteAE.ae_title == ae_title))
        if exists is not None:
            raise ConflictError(f"{ae_title} is already registered for {project.acronym}")
        session.add(RemoteAE(project_id=project.id, ae_title=ae_title, host=host, port=port))
        session.add(AuditEvent(actor=actor, action="remote.add", project_id=project.id,
                               count=1, details={"ae_title": ae_title, "host": host,
                                                 "port": port}))
    return Remote(project.acronym, ae_title, host, port)


def list_remotes(inst: Installation, acronym: str | None = None) -> list[Remote]:
    with inst.db.session() as session:
        query = (select(Project.acronym, RemoteAE.ae_title, RemoteAE.host, RemoteAE.port)
                 .join(Project, Project.id == RemoteAE.project_id)
                 .order_by(Project.acronym, RemoteAE.ae_title))
        if acronym is not None:
            query = query.where(Project.id == get_project(inst, acronym).id)
        return [Remote(*row) for row in session.execute(query)]


def remove_remote(inst: Installation, acronym: str, ae_title: str, actor: str = "cli") -> None:
    project = get_project(inst, acronym)
    title = (ae_title or "").strip()
    with inst.db.session() as session:
        result = session.execute(delete(RemoteAE).where(RemoteAE.project_id == project.id,
                                                        RemoteAE.ae_title == title))
        if not result.rowcount:
            raise NotFoundError(f"{title} is not registered for {project.acronym}")
        session.add(AuditEvent(actor=actor, action="remote.remove", project_id=project.id,
                               count=1, details={"ae_title": title}))


def visible_projects(inst: Installation, ae_title: str) -> set[int]:
    """Ids of the projects ``ae_title`` is registered for (empty: it gets nothing)."""
    with inst.db.session() as session:
        return set(session.scalars(select(RemoteAE.project_id)
                                   .where(RemoteAE.ae_title == ae_title.strip())))


def destination_for(inst: Installation, ae_title: str) -> Destination | None:
    """The address of a move destination, with the projects registered at that address."""
    with inst.db.session() as session:
        rows = list(session.execute(
            select(RemoteAE.project_id, RemoteAE.host, RemoteAE.port)
            .where(RemoteAE.ae_title == ae_title.strip()).order_by(RemoteAE.id.desc())))
    if not rows:
        return None
    _, host, port = rows[0]
    # One AE title registered at different addresses by different projects: the newest
    # registration wins, and only the projects registered at that address are sent.
    return Destination(host, port, {p for p, h, o in rows if (h, o) == (host, port)})
