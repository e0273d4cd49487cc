"""Projects: creation, lookup, the assignment rule and the keys of de-identification."""

from __future__ import annotations

import re
import secrets
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..db import AuditEvent, Instance, Participant, Project, Series, Study
from ..deid import Profile, date_offset_days
from ..errors import ConflictError, InvalidInputError, NotFoundError
from ..installation import Installation
from .content import ProjectSpec


def create_project(inst: Installation, spec: ProjectSpec, actor: str = "cli") -> Project:
    """Create a project with a fresh 256-bit secret (never shown, never exported)."""
    spec = spec.validated()
    with inst.db.session() as session:
        clash = session.scalar(
            select(Project.acronym).where(func.lower(Project.acronym) == spec.acronym.lower())
        )
        if clash is not None:
            raise ConflictError(f"a project with acronym '{clash}' already exists")
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
        session.flush()
        session.add(AuditEvent(actor=actor, action="project.create", project_id=project.id,
                               count=1, details={"acronym": project.acronym}))
    return project


def list_projects(inst: Installation) -> list[Project]:
    with inst.db.session() as session:
        return list(session.scalars(select(Project).order_by(Project.acronym)))


def get_project(inst: Installation, acronym: str) -> Project:
    with inst.db.session() as session:
        project = session.scalar(select(Project).where(Project.acronym == acronym))
    if project is None:
        raise NotFoundError(f"no project '{acronym}' (see: rpacs project list)")
    return project


def project_summary(inst: Installation, project: Project) -> dict[str, Any]:
    """Everything about a project a user may see — never its secret — with counts."""
    with inst.db.session() as session:
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
        "participants": participants or 0,
        "studies": studies or 0,
        "series": series or 0,
        "instances": instances or 0,
    }


def set_deid_profile(inst: Installation, acronym: str, yaml_text: str,
                     actor: str = "cli") -> None:
    try:
        Profile.from_yaml(yaml_text)
    except InvalidInputError as exc:
        raise InvalidInputError([f"profile: {p}" for p in exc.problems]) from exc
    with inst.db.session() as session:
        project = session.scalar(select(Project).where(Project.acronym == acronym))
        if project is None:
            raise NotFoundError(f"no project '{acronym}' (see: rpacs project list)")
        project.deid_profile = yaml_text
        session.add(AuditEvent(actor=actor, action="project.profile", project_id=project.id,
                               count=1, details={}))


def deid_profile(project: Project) -> Profile:
    """The project's de-identification profile: its own YAML, or the default."""
    return Profile.from_yaml(project.deid_profile) if project.deid_profile else Profile.default()


def check_assignment(project: Project, participant_id: str, event: str) -> None:
    """A participant ID must fit the project's rule and the event must be one of its own."""
    problems = []
    if not re.fullmatch(project.participant_pattern, participant_id or ""):
        problems.append(
            f"--participant: '{participant_id}' does not match the project's participant "
            f"pattern {project.participant_pattern}"
        )
    if event not in project.events:
        problems.append(
            f"--event: '{event}' is not an event of {project.acronym} "
            f"({', '.join(project.events)})"
        )
    if problems:
        raise InvalidInputError(problems)


def date_offset_for(project: Project, participant_id: str) -> int:
    """Days every date moves: one offset per project, or one per participant."""
    per_participant = project.date_shift == "per-participant"
    return date_offset_days(project.secret, participant_id if per_participant else None)


def get_or_create_participant(session: Session, project: Project,
                              research_id: str) -> Participant:
    participant = session.scalar(
        select(Participant).where(
            Participant.project_id == project.id, Participant.research_id == research_id
        )
    )
    if participant is None:
        participant = Participant(project_id=project.id, research_id=research_id)
        session.add(participant)
        session.flush()
    return participant
