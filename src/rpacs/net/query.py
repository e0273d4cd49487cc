"""C-FIND matching and retrieve selection on the archive index (PS3.4 Annex C).

Supports single-value, wildcard (``*``, ``?``), UID-list and date/time range matching on the
attributes below, at PATIENT (patient root), STUDY, SERIES and IMAGE level. Matching is
relational: keys of any level at or above the query level filter, so a viewer may ask for
the series of a participant without naming the study first. The index holds only
de-identified values, so answers never hold original data; and a caller sees only the
projects it is registered for.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import Dataset
from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from ..db import Instance, Participant, Project, Series, Study
from ..deid import quiet  # noqa: F401  (pydicom's value warnings off)
from ..installation import Installation


class QueryError(ValueError):
    """The identifier cannot be answered (unknown level, missing unique key, bad range)."""


class Level(enum.IntEnum):
    PATIENT = 0
    STUDY = 1
    SERIES = 2
    IMAGE = 3


class Kind(enum.Enum):
    UID = "uid"
    TEXT = "text"
    DATE = "date"
    TIME = "time"
    NUMBER = "number"


@dataclass(frozen=True)
class Key:
    """A matching/return key: its level, its column, and how its value is matched."""

    level: Level
    column: Any
    kind: Kind


_KEYS: dict[str, Key] = {
    "PatientID": Key(Level.PATIENT, Participant.research_id, Kind.TEXT),
    "PatientName": Key(Level.PATIENT, Participant.research_id, Kind.TEXT),
    "StudyInstanceUID": Key(Level.STUDY, Study.study_uid, Kind.UID),
    "StudyDate": Key(Level.STUDY, Study.study_date, Kind.DATE),
    "StudyTime": Key(Level.STUDY, Study.study_time, Kind.TIME),
    "StudyID": Key(Level.STUDY, Study.study_id, Kind.TEXT),
    "StudyDescription": Key(Level.STUDY, Study.study_description, Kind.TEXT),
    "ModalitiesInStudy": Key(Level.STUDY, Study.modalities, Kind.TEXT),
    "InstitutionName": Key(Level.STUDY, Project.acronym, Kind.TEXT),
    "ReferringPhysicianName": Key(Level.STUDY, Study.event, Kind.TEXT),
    "SeriesInstanceUID": Key(Level.SERIES, Series.series_uid, Kind.UID),
    "Modality": Key(Level.SERIES, Series.modality, Kind.TEXT),
    "SeriesNumber": Key(Level.SERIES, Series.series_number, Kind.NUMBER),
    "SeriesDescription": Key(Level.SERIES, Series.series_description, Kind.TEXT),
    "BodyPartExamined": Key(Level.SERIES, Series.body_part, Kind.TEXT),
    "SeriesDate": Key(Level.SERIES, Series.series_date, Kind.DATE),
    "SOPInstanceUID": Key(Level.IMAGE, Instance.sop_uid, Kind.UID),
    "SOPClassUID": Key(Level.IMAGE, Instance.sop_class_uid, Kind.UID),
    "InstanceNumber": Key(Level.IMAGE, Instance.instance_number, Kind.NUMBER),
    "Rows": Key(Level.IMAGE, Instance.rows, Kind.NUMBER),
    "Columns": Key(Level.IMAGE, Instance.columns, Kind.NUMBER),
    "NumberOfFrames": Key(Level.IMAGE, Instance.frames, Kind.NUMBER),
}
#: Counts computed per match (return keys only).
_COUNTS = {
    "NumberOfPatientRelatedStudies": Level.PATIENT,
    "NumberOfStudyRelatedSeries": Level.STUDY,
    "NumberOfStudyRelatedInstances": Level.STUDY,
    "NumberOfSeriesRelatedInstances": Level.SERIES,
}
_UNIQUE = {
    Level.PATIENT: "PatientID",
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.IMAGE: "SOPInstanceUID",
}
#: Models joined for each level, from the top down.
_CHAIN: list[tuple[Any, Callable[[], ColumnElement[bool]]]] = [
    (Study, lambda: Study.participant_id == Participant.id),
    (Series, lambda: Series.study_id == Study.id),
    (Instance, lambda: Instance.series_id == Series.id),
]


def _level_of(identifier: Dataset) -> Level:
    name = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    try:
        return Level[name]
    except KeyError as exc:
        raise QueryError(f"QueryRetrieveLevel '{name[:16]}' is not PATIENT, STUDY, SERIES "
                         "or IMAGE") from exc


def _like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _range(column: InstrumentedAttribute[Any], value: str, width: int) -> ColumnElement[bool]:
    low, _, high = value.partition("-")
    low, high = low.strip(), high.strip()
    if not low and not high:
        raise QueryError("a range needs at least one end")
    parts = []
    if low:
        parts.append(column >= low[:width])
    if high:
        # An end without the full precision covers all of it (20230517 ≤ 20230517235959).
        parts.append(column <= high[:width] + "\uffff" if len(high) < width else
                     column <= high[:width])
    return and_(*parts)


def _condition(key: Key, value: str) -> ColumnElement[bool] | None:
    """The SQL condition of one matching key; None for universal matching (empty, ``*``)."""
    value = value.strip()
    if value in ("", "*"):
        return None
    column = key.column
    if key.kind is Kind.UID:
        uids = [u.strip() for u in value.split("\\") if u.strip()]
        return column.in_(uids) if len(uids) > 1 else column == uids[0]
    if key.kind is Kind.NUMBER:
        try:
            return column == int(value)
        except ValueError as exc:
            raise QueryError("a numeric key has a value that is not a number") from exc
    if key.kind in (Kind.DATE, Kind.TIME):
        width = 8 if key.kind is Kind.DATE else 16
        if "-" in value:
            return _range(column, value, width)
        return column == value if key.kind is Kind.DATE else column.like(value + "%")
    if "*" in value or "?" in value:
        return column.like(_like(value), escape="\\")
    if "\\" in value:  # a list of values in a text key: any of them
        return or_(*(column == v for v in value.split("\\")))
    return column == value


@dataclass(frozen=True)
class _Plan:
    level: Level
    keywords: list[str]
    query: Select[Any]


def _plan(projects: Iterable[int], identifier: Dataset, only: set[str] | None = None) -> _Plan:
    level = _level_of(identifier)
    keywords = [e.keyword for e in identifier if e.keyword and e.keyword != "QueryRetrieveLevel"]
    models: list[Any] = [Participant, Project]
    query = select(Participant, Project).join(Project, Project.id == Participant.project_id)
    for depth, (model, on) in enumerate(_CHAIN, start=1):
        if depth > level:
            break
        query = query.join(model, on())
        models.append(model)
    query = query.with_only_columns(*models).where(Participant.project_id.in_(list(projects)))
    if level is Level.PATIENT:
        query = query.where(select(Study.id).where(Study.participant_id == Participant.id)
                            .exists())
    for keyword in keywords:
        key = _KEYS.get(keyword)
        if key is None or key.level > level or (only is not None and keyword not in only):
            continue
        element = identifier[keyword]
        if element.VR == "SQ":
            continue
        value = element.value
        text = "\\".join(str(v) for v in value) if isinstance(value, list | tuple) else str(
            value if value is not None else "")
        condition = _condition(key, text)
        if condition is not None:
            query = query.where(condition)
    order = {Level.PATIENT: [Participant.research_id], Level.STUDY: [Study.study_date,
             Study.study_uid], Level.SERIES: [Series.series_number, Series.series_uid],
             Level.IMAGE: [Instance.instance_number, Instance.sop_uid]}[level]
    return _Plan(level, keywords, query.order_by(Participant.project_id, *order))


def _value(keyword: str, row: dict[str, Any]) -> Any:
    key = _KEYS[keyword]
    model = key.column.class_
    value = getattr(row[model.__name__], key.column.key)
    return "" if value is None else value


def _count(session: Any, keyword: str, row: dict[str, Any]) -> int:
    if keyword == "NumberOfPatientRelatedStudies":
        return session.scalar(select(func.count()).select_from(Study)
                              .where(Study.participant_id == row["Participant"].id)) or 0
    if keyword == "NumberOfStudyRelatedSeries":
        return row["Study"].n_series
    if keyword == "NumberOfStudyRelatedInstances":
        return row["Study"].n_instances
    return row["Series"].n_instances


def find_matches(inst: Installation, projects: Iterable[int], identifier: Dataset
                 ) -> list[Dataset]:
    """The C-FIND responses for ``identifier`` over ``projects``."""
    plan = _plan(projects, identifier)
    answers = []
    with inst.db.session() as session:
        for result in session.execute(plan.query):
            row = {type(obj).__name__: obj for obj in result}
            ds = Dataset()
            ds.QueryRetrieveLevel = plan.level.name
            keywords = list(plan.keywords)
            unique = _UNIQUE[plan.level]
            if unique not in keywords:
                keywords.append(unique)
            for keyword in keywords:
                key = _KEYS.get(keyword)
                if key is not None and key.level <= plan.level:
                    setattr(ds, keyword, _value(keyword, row))
                elif keyword in _COUNTS and _COUNTS[keyword] <= plan.level:
                    setattr(ds, keyword, _count(session, keyword, row))
                elif keyword == "SpecificCharacterSet":
                    continue
                elif keyword in identifier:
                    ds[keyword] = identifier[keyword]  # unsupported: returned empty
                    ds[keyword].value = None if identifier[keyword].VR != "SQ" else []
            if any(isinstance(e.value, str) and not e.value.isascii() for e in ds):
                ds.SpecificCharacterSet = "ISO_IR 192"
            answers.append(ds)
    return answers


@dataclass(frozen=True)
class RetrieveRequest:
    """The stored files a C-MOVE or C-GET names, in a stable order."""

    paths: list[Path]


def instances_to_retrieve(inst: Installation, projects: Iterable[int], identifier: Dataset
                          ) -> RetrieveRequest:
    """The files matching the unique keys of ``identifier`` (PS3.4 C.4.2.2.1)."""
    level = _level_of(identifier)
    unique = _UNIQUE[level]
    value = identifier.get(unique, None)
    if value is None or str(value.value if hasattr(value, "value") else value).strip() == "":
        raise QueryError(f"a {level.name} level retrieve needs {unique}")
    allowed = {u for lv, u in _UNIQUE.items() if lv <= level}
    image = identifier.copy()
    image.QueryRetrieveLevel = "IMAGE"
    plan = _plan(projects, image, only=allowed)
    root = inst.settings.store_dir
    with inst.db.session() as session:
        paths = [root / result[-1].path for result in session.execute(plan.query)]
    return RetrieveRequest(paths)
