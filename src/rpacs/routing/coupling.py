"""Coupling lists: AccessionNumber → project, participant and event, uploaded ahead.

The CSV has the header ``accession_number,project,participant,event``. Entries expire after
the coupling period (14 days by default). Accession numbers are kept only as keyed hashes,
so the index never holds them in the clear; a study whose AccessionNumber hashes to an
entry's key is assigned on arrival.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
from collections.abc import Collection

from sqlalchemy import delete, select

from ..db import AuditEvent, CouplingEntry, Project, upsert
from ..errors import InvalidInputError, NotFoundError
from ..installation import Installation
from ..projects import check_assignment, get_project

COLUMNS = ["accession_number", "project", "participant", "event"]


def accession_key(installation_secret: bytes, accession_number: str) -> str:
    return hmac.new(installation_secret, b"accession:" + accession_number.encode("utf-8"),
                    hashlib.sha256).hexdigest()


def upload_coupling_list(inst: Installation, text: str, *, source: str = "coupling list",
                         actor: str = "cli", now: dt.datetime | None = None,
                         projects: Collection[str] | None = None) -> int:
    """Store every line of a coupling list, or none: InvalidInputError lists all problems.

    A line for an accession number already listed replaces the earlier entry (and restarts
    its expiry). ``projects``, when given, are the only acronyms the list may name (the
    web app's user's); any other is reported as if it did not exist. Returns the number of
    entries stored.
    """
    now = now or dt.datetime.now(dt.UTC)
    expires = now + dt.timedelta(days=inst.settings.coupling_days)
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in reader.fieldnames or []]
    if header != COLUMNS:
        raise InvalidInputError(f"{source}: the header must be {','.join(COLUMNS)}")
    problems: list[str] = []
    rows: dict[str, dict[str, object]] = {}
    found: dict[str, Project | None] = {}
    secret = inst.settings.installation_secret
    with inst.db.session() as session:
        for number, line in enumerate(reader, start=2):
            values = {k.strip(): (v or "").strip() for k, v in line.items() if k}
            accession = values.get("accession_number", "")
            acronym = values.get("project", "")
            if not accession or len(accession) > 16:
                problems.append(f"{source} line {number}: accession_number must be 1-16 "
                                "characters")
                continue
            if acronym not in found:
                try:
                    found[acronym] = get_project(inst, acronym) if (
                        projects is None or acronym in projects) else None
                except NotFoundError:
                    found[acronym] = None
            project = found[acronym]
            if project is None:
                problems.append(f"{source} line {number}: no project '{acronym}'")
                continue
            try:
                check_assignment(project, values.get("participant", ""),
                                 values.get("event", ""))
            except InvalidInputError as exc:
                problems.extend(f"{source} line {number}: {p.lstrip('-')}"
                                for p in exc.problems)
                continue
            rows[accession_key(secret, accession)] = {
                "accession_key": accession_key(secret, accession), "project_id": project.id,
                "participant": values["participant"], "event": values["event"],
                "uploaded_at": now, "expires_at": expires,
            }
        if problems:
            raise InvalidInputError(problems)
        upsert(session, CouplingEntry.__table__, list(rows.values()), keys=("accession_key",),
               replace=("project_id", "participant", "event", "uploaded_at", "expires_at"))
        for project_id in {r["project_id"] for r in rows.values()}:
            session.add(AuditEvent(
                actor=actor, action="coupling.upload", project_id=project_id,
                count=sum(1 for r in rows.values() if r["project_id"] == project_id),
                details={"expires": expires.isoformat()}))
    return len(rows)


def coupling_entry(inst: Installation, accession_number: str,
                   now: dt.datetime | None = None) -> CouplingEntry | None:
    """The unexpired entry for ``accession_number``, if any (expired ones are deleted)."""
    if not accession_number:
        return None
    now = now or dt.datetime.now(dt.UTC)
    with inst.db.session() as session:
        session.execute(delete(CouplingEntry).where(CouplingEntry.expires_at < now))
        return session.scalar(select(CouplingEntry).where(
            CouplingEntry.accession_key == accession_key(inst.settings.installation_secret,
                                                         accession_number)))
