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
from collections.abc import Collection, Iterator

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..db import AuditEvent, CouplingEntry, Project, upsert
from ..errors import ConflictError, InvalidInputError, NotFoundError
from ..installation import Installation
from ..projects import check_assignment, get_project

COLUMNS = ["accession_number", "project", "participant", "event"]
#: Largest coupling list the web app and the API accept (a line is about 60 bytes: some
#: 80,000 lines).
MAX_COUPLING_BYTES = 5 * 2**20
#: Keys per query when looking up stored entries (well below any driver's parameter limit).
_QUERY_BATCH = 500


def accession_key(installation_secret: bytes, accession_number: str) -> str:
    return hmac.new(installation_secret, b"accession:" + accession_number.encode("utf-8"),
                    hashlib.sha256).hexdigest()


def upload_coupling_list(inst: Installation, text: str, *, source: str = "coupling list",
                         actor: str = "cli", now: dt.datetime | None = None,
                         projects: Collection[str] | None = None) -> int:
    """Store every line of a coupling list, or none; returns the number of entries stored.

    ``projects``, when given, are the only acronyms the list may name (the web app's
    user's); any other is reported as if it did not exist. A line for an accession number
    with an unexpired entry of the *same* project replaces that entry (and restarts its
    expiry; a changed participant or event is audited as ``coupling.replace``). A line for
    one with an unexpired entry of *another* project is a conflict: entries are keyed by
    the accession number alone, so replacing it would route that project's study into
    this one. The other project is named only to a caller who may name it (one of
    ``projects``, or anyone on the command line).

    Raises InvalidInputError listing every problem, line by line, when a line is not valid
    (conflicting lines included); ConflictError listing the conflicting lines when they
    are the only problem.
    """
    now = now or dt.datetime.now(dt.UTC)
    expires = now + dt.timedelta(days=inst.settings.coupling_days)
    rows, problems = _read(inst, text, source, now, expires, projects)
    with inst.db.session() as session:
        conflicts, replaced = _compare(session, rows, _unexpired(session, list(rows), now),
                                       projects)
        if problems:
            raise InvalidInputError(_messages(source, problems + conflicts))
        if conflicts:
            raise ConflictError(_messages(source, conflicts))
        values = [row for _number, row in rows.values()]
        # Conditional: an entry of another project stored meanwhile (by an upload running
        # at the same time) is left as it is, and found below.
        upsert(session, CouplingEntry.__table__, values, keys=("accession_key",),
               replace=("project_id", "participant", "event", "uploaded_at", "expires_at"),
               where=lambda table, new: (table.c.project_id == new.project_id)
               | (table.c.expires_at < now))
        after = _unexpired(session, list(rows), now)
        taken = [(number, "this accession number was just listed for another project; "
                          "upload the list again")
                 for key, (number, row) in rows.items()
                 if key in after and after[key][0] != row["project_id"]]
        if taken:
            raise ConflictError(_messages(source, taken))
        for project_id in {r["project_id"] for r in values}:
            session.add(AuditEvent(
                actor=actor, action="coupling.upload", project_id=project_id,
                count=sum(1 for r in values if r["project_id"] == project_id),
                details={"expires": expires.isoformat()}))
        for project_id, count in replaced.items():
            session.add(AuditEvent(actor=actor, action="coupling.replace",
                                   project_id=project_id, count=count,
                                   details={"expires": expires.isoformat()}))
    return len(rows)


#: A coupling list as read: accession key → (line number, the entry to store).
_Rows = dict[str, tuple[int, dict[str, object]]]


def _read(inst: Installation, text: str, source: str, now: dt.datetime,
          expires: dt.datetime, projects: Collection[str] | None
          ) -> tuple[_Rows, list[tuple[int, str]]]:
    """The valid lines of a coupling list, and a problem (line number, text) per other."""
    problems: list[tuple[int, str]] = []
    rows: _Rows = {}
    found: dict[str, Project | None] = {}
    secret = inst.settings.installation_secret
    # Lines are counted as the reader takes them: its own line_num leaves out the line it
    # failed on, and a problem must name the line at fault.
    taken = [0]

    def lines() -> Iterator[str]:
        for line in io.StringIO(text.lstrip("\ufeff")):
            taken[0] += 1
            yield line

    reader = csv.DictReader(lines())
    try:
        header = [h.strip() for h in reader.fieldnames or []]
        if header != COLUMNS:
            raise InvalidInputError(f"{source}: the header must be {','.join(COLUMNS)}")
        for line in reader:
            number = taken[0]
            values = {k.strip(): (v or "").strip() for k, v in line.items() if k}
            accession = values.get("accession_number", "")
            acronym = values.get("project", "")
            if not accession or len(accession) > 16:
                problems.append((number, "accession_number must be 1-16 characters"))
                continue
            if acronym not in found:
                try:
                    found[acronym] = get_project(inst, acronym) if (
                        projects is None or acronym in projects) else None
                except NotFoundError:
                    found[acronym] = None
            project = found[acronym]
            if project is None:
                problems.append((number, f"no project '{acronym[:64]}'"))
                continue
            try:
                check_assignment(project, values.get("participant", ""),
                                 values.get("event", ""))
            except InvalidInputError as exc:
                problems.extend((number, p.lstrip("-")) for p in exc.problems)
                continue
            key = accession_key(secret, accession)
            rows[key] = (number, {
                "accession_key": key, "project_id": project.id,
                "participant": values["participant"], "event": values["event"],
                "uploaded_at": now, "expires_at": expires,
            })
    except csv.Error as exc:
        # Not CSV the reader can take (a field over its size limit, a NUL byte...): the
        # rest cannot be read. The module's message names the fault, never the content.
        problems.append((taken[0], f"not valid CSV ({exc})"))
        raise InvalidInputError(_messages(source, problems)) from None
    return rows, problems


def _messages(source: str, problems: list[tuple[int, str]]) -> list[str]:
    return [f"{source} line {number}: {text}" for number, text in sorted(problems)]


def _unexpired(session: Session, keys: list[str], now: dt.datetime
               ) -> dict[str, tuple[int, str, str]]:
    """Unexpired stored entries of ``keys``: key → (project id, participant, event)."""
    found: dict[str, tuple[int, str, str]] = {}
    for start in range(0, len(keys), _QUERY_BATCH):
        for key, project_id, participant, event in session.execute(
                select(CouplingEntry.accession_key, CouplingEntry.project_id,
                       CouplingEntry.participant, CouplingEntry.event)
                .where(CouplingEntry.accession_key.in_(keys[start:start + _QUERY_BATCH]),
                       CouplingEntry.expires_at >= now)):
            found[key] = (project_id, participant, event)
    return found


def _compare(session: Session, rows: _Rows, stored: dict[str, tuple[int, str, str]],
             projects: Collection[str] | None
             ) -> tuple[list[tuple[int, str]], dict[int, int]]:
    """The lines that clash with another project's entry and, per project, how many of
    its entries the list changes (another participant or event)."""
    conflicts: list[tuple[int, str]] = []
    replaced: dict[int, int] = {}
    names: dict[int, str | None] = {}
    for key, (number, row) in rows.items():
        if key not in stored:
            continue
        project_id, participant, event = stored[key]
        if project_id == row["project_id"]:
            if (participant, event) != (row["participant"], row["event"]):
                replaced[project_id] = replaced.get(project_id, 0) + 1
            continue
        if project_id not in names:
            acronym = session.scalar(select(Project.acronym).where(Project.id == project_id))
            # Named only to whom may know the project: to others it does not exist.
            names[project_id] = acronym if projects is None or acronym in projects else None
        other = f"project {names[project_id]}" if names[project_id] else "another project"
        conflicts.append((number, f"this accession number is listed for {other} until its "
                                  "entry expires; one accession number cannot be listed "
                                  "for two projects"))
    return conflicts, replaced


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
