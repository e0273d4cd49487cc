"""The study design at a glance: participants × events, and the series behind each cell."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from ..db import Participant, Project, Series, Study
from ..installation import Installation


@dataclass
class GridCell:
    """The studies of one participant at one event."""

    studies: int = 0
    series: int = 0
    instances: int = 0
    modalities: list[str] = field(default_factory=list)


@dataclass
class StudyGrid:
    """Participants (rows) × events (columns); a cell is absent where nothing is stored.

    Events are the project's own, in its order, followed by any event a study names that
    the project no longer lists (so nothing stored is ever hidden).
    """

    participants: list[str]
    events: list[str]
    cells: dict[tuple[str, str], GridCell]

    def as_dict(self) -> dict[str, Any]:
        return {
            "participants": self.participants,
            "events": self.events,
            "cells": [{"participant": p, "event": e, "studies": c.studies,
                       "series": c.series, "instances": c.instances,
                       "modalities": c.modalities}
                      for (p, e), c in sorted(self.cells.items())],
        }


def study_grid(inst: Installation, project: Project) -> StudyGrid:
    """The participants × events grid of ``project`` with study counts and modalities."""
    with inst.db.session() as session:
        participants = list(session.scalars(
            select(Participant.research_id).where(Participant.project_id == project.id)
            .order_by(Participant.research_id)))
        rows = session.execute(
            select(Participant.research_id, Study.event, Study.n_series, Study.n_instances,
                   Study.modalities)
            .join(Participant, Participant.id == Study.participant_id)
            .where(Study.project_id == project.id)).all()
    cells: dict[tuple[str, str], GridCell] = defaultdict(GridCell)
    modalities: dict[tuple[str, str], set[str]] = defaultdict(set)
    events = list(project.events)
    for research_id, event, n_series, n_instances, study_modalities in rows:
        cell = cells[research_id, event]
        cell.studies += 1
        cell.series += n_series or 0
        cell.instances += n_instances or 0
        modalities[research_id, event].update(m for m in (study_modalities or "").split("\\")
                                              if m)
        if event not in events:
            events.append(event)
    for key, cell in cells.items():
        cell.modalities = sorted(modalities[key])
    return StudyGrid(participants=participants, events=events, cells=dict(cells))


def series_list(inst: Installation, project: Project, participant: str | None = None,
                event: str | None = None) -> list[dict[str, Any]]:
    """The series of ``project`` (of one participant and/or event), in study order."""
    stmt = (select(Series, Study, Participant.research_id)
            .join(Study, Study.id == Series.study_id)
            .join(Participant, Participant.id == Study.participant_id)
            .where(Study.project_id == project.id)
            .order_by(Participant.research_id, Study.event, Study.study_date, Study.id,
                      Series.series_number, Series.id))
    if participant:
        stmt = stmt.where(Participant.research_id == participant)
    if event:
        stmt = stmt.where(Study.event == event)
    with inst.db.session() as session:
        rows = session.execute(stmt).all()
    return [
        {"id": series.id, "participant": research_id, "event": study.event,
         "study_uid": study.study_uid, "study_date": study.study_date,
         "study_description": study.study_description, "series_uid": series.series_uid,
         "series_number": series.series_number, "modality": series.modality,
         "series_description": series.series_description, "body_part": series.body_part,
         "instances": series.n_instances}
        for series, study, research_id in rows
    ]


#: The ethics end date is highlighted this many days ahead.
ETHICS_WARNING_DAYS = 60


def ethics_state(end_date: dt.date, today: dt.date | None = None) -> str:
    """``ended``, ``ending`` (within :data:`ETHICS_WARNING_DAYS`) or ``""``."""
    days = (end_date - (today or dt.date.today())).days
    if days < 0:
        return "ended"
    return "ending" if days <= ETHICS_WARNING_DAYS else ""
