"""Projects: creation, lookup, the assignment rule and the keys of de-identification."""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db import AuditEvent, Instance, Participant, Project, Series, Study
from ..deid.dates import date_offset_days  # pure hashing: no pydicom (rpacs.deid is lazy)
from ..errors import ConflictError, InvalidInputError, NotFoundError
from ..installation import Installation
from .content import ProjectSpec

if TYPE_CHECKING:
    from ..deid import Profile

#: A research ID as it can be written into PatientID (LO) and PatientName (PN) of every
#: instance: ASCII, as a file declaring no character set holds only that; no backslash (a
#: value separator), caret or equals sign (PN's component and component-group
#: separators); no space at either end (DICOM pads values with spaces and readers strip
#: them).
RESEARCH_ID = re.compile(r"[!-<>-\[\]-\]_-~](?:[ -<>-\[\]-\]_-~]{0,62}[!-<>-\[\]-\]_-~])?")


def _find(session: Session, acronym: str) -> Project | None:
    # Acronyms are unique regardless of case, so a case-insensitive lookup is unambiguous.
    return session.scalar(
        select(Project).where(func.lower(Project.acronym) == (acronym or "").lower())
    )


def create_project(inst: Installation, spec: ProjectSpec, actor: str = "cli") -> Project:
    """Create a project with a fresh 256-bit secret (never shown, never exported).

    Raises InvalidInputError listing every problem of ``spec``, and ConflictError when the
    acronym is taken (in any letter case).
    """
    spec = spec.validated()
    with inst.db.session() as session:
        clash = _find(session, spec.acronym)
        if clash is not None:
            raise ConflictError(f"a project with acronym '{clash.acronym}' already exists")
        project = Project(
            acronym=spec.acronym,
            rek=spec.rek,
            pi_name=spec.pi_name,
            pi_email=spec.pi_email,
            start_date=spec.start_date,
            end_date=spec.end_date,
            participant_pattern=spec.participant_pattern,
            events=list(spec.events),
            end_action=spec.end_action,
            date_shift=spec.date_shift,
            state="active",
            secret=secrets.token_bytes(32),
            deid_profile=spec.deid_profile,
        )
        session.add(project)
        try:
            session.flush()
        except IntegrityError as exc:  # created by someone else since the check above
            raise ConflictError(
                f"a project with acronym '{spec.acronym}' already exists"
            ) from exc
        session.add(AuditEvent(actor=actor, action="project.create", project_id=project.id,
                               count=1, details={"acronym": project.acronym}))
    return project


def list_projects(inst: Installation) -> list[Project]:
    """All projects, by acronym."""
    with inst.db.session() as session:
        return list(session.scalars(select(Project).order_by(Project.acronym)))


def get_project(inst: Installation, acronym: str) -> Project:
    """The project named ``acronym`` (any letter case), or NotFoundError."""
    with inst.db.session() as session:
        project = _find(session, acronym)
    if project is None:
        raise NotFoundError(f"no project '{acronym}' (see: rpacs project list)")
    return project


def project_summary(inst: Installation, project: Project) -> dict[str, Any]:
    """Everything about a project a user may see — never its secret — with counts."""
    with inst.db.session() as session:
        created_at = session.scalar(select(Project.created_at).where(Project.id == project.id))
        participants = session.scalar(
            select(func.count()).select_from(Participant).where(
                Participant.project_id == project.id)
        )
        studies = session.scalar(
            select(func.count()).select_from(Study).where(Study.project_id == project.id)
        )
        series = session.scalar(
            select(func.count()).select_from(Series).join(Study).where(
                Study.project_id == project.id)
        )
        instances = session.scalar(
            select(func.count()).select_from(Instance).where(Instance.project_id == project.id)
        )
    return {
        "acronym": project.acronym,
        "rek": project.rek,
        "pi_name": project.pi_name,
        "pi_email": project.pi_email,
        "start_date": project.start_date.isoformat(),
        "end_date": project.end_date.isoformat(),
        "participant_pattern": project.participant_pattern,
        "events": list(project.events),
        "end_action": project.end_action,
        "date_shift": project.date_shift,
        "state": project.state,
        "custom_deid_profile": bool(project.deid_profile),
        "created_at": created_at.isoformat() if created_at else None,
        "participants": participants or 0,
        "studies": studies or 0,
        "series": series or 0,
        "instances": instances or 0,
    }


def set_deid_profile(inst: Installation, acronym: str, yaml_text: str,
                     actor: str = "cli") -> None:
    """Give a project its own de-identification profile; it applies to later imports.

    Files already stored keep the de-identification they had; the audit log records the
    change so that a reviewer can tell which imports ran under which profile.
    """
    from ..deid import Profile

    try:
        Profile.from_yaml(yaml_text)
    except InvalidInputError as exc:
        raise InvalidInputError([f"profile: {p}" for p in exc.problems]) from exc
    with inst.db.session() as session:
        project = _find(session, acronym)
        if project is None:
            raise NotFoundError(f"no project '{acronym}' (see: rpacs project list)")
        project.deid_profile = yaml_text if yaml_text.strip() else None
        session.add(AuditEvent(actor=actor, action="project.profile", project_id=project.id,
                               count=1, details={}))


def deid_profile(project: Project) -> Profile:
    """The project's de-identification profile: its own YAML, or the default."""
    # Imported here: pydicom is needed only by commands that de-identify, not by every
    # command that looks up a project.
    from ..deid import Profile

    return Profile.from_yaml(project.deid_profile) if project.deid_profile else Profile.default()


def check_assignment(project: Project, participant_id: str, event: str) -> None:
    """A participant ID must fit the project's rule and the event must be one of its own.

    The ID is matched with ``re.fullmatch`` and must also be a valid DICOM PatientID and
    PatientName (:data:`RESEARCH_ID`), since it is written into every stored instance.
    """
    problems = []
    participant_id = participant_id or ""
    if not RESEARCH_ID.fullmatch(participant_id):
        problems.append(
            "--participant: a research ID must be 1-64 ASCII letters, digits, punctuation "
            "or inner spaces, without '\\', '^' or '=' (it is written into PatientID and "
            "PatientName, in DICOM's default character set)"
        )
    elif not re.fullmatch(project.participant_pattern, participant_id):
        # The ID is not echoed: a mistyped one may be a patient's name or national ID.
        problems.append(
            "--participant: the research ID does not match the project's participant "
            f"pattern {project.participant_pattern}"
        )
    if event not in project.events:
        problems.append(
            f"--event: '{event}' is not an event of {project.acronym} "
            f"(one of: {', '.join(project.events)})"
        )
    if problems:
        raise InvalidInputError(problems)


def date_offset_for(project: Project, participant_id: str) -> int:
    """Days every date moves: one offset per project, or one per participant."""
    per_participant = project.date_shift == "per-participant"
    return date_offset_days(project.secret, participant_id if per_participant else None)


def get_or_create_participant(session: Session, project: Project,
                              research_id: str) -> Participant:
    """The participant ``research_id`` of ``project``, added to the index on first use."""
    participant = session.scalar(
        select(Participant).where(
            Participant.project_id == project.id, Participant.research_id == research_id
        )
    )
    if participant is None:
        participant = Participant(project_id=project.id, research_id=research_id)
        try:
            # A savepoint: another import (the DICOM gateway's, say) may add the same
            # participant at the same moment; then its row is the one to use.
            with session.begin_nested():
                session.add(participant)
        except IntegrityError:
            participant = session.scalars(select(Participant).where(
                Participant.project_id == project.id,
                Participant.research_id == research_id)).one()
    return participant
