"""One tag path in depth: all its values with counts, and the series that carry each.

The counts come from the index. Which series carry a value the index does not keep (it
would double its size for the rare question), so it is answered from the stored files:
only the one top-level element of the path is read from each file. Projects with more than
:data:`FULL_SCAN_LIMIT` instances are sampled — the first, middle and last instance of each
series — and the answer says so, since a value found in one instance only may be missed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pydicom
from sqlalchemy import func, select

from ..db import Instance, Participant, Project, Series, Study, TagInventory, TagValue
from ..deid import quiet  # noqa: F401  (pydicom's value warnings off)
from ..errors import NotFoundError
from ..installation import Installation
from .content import PATH_LENGTH
from .entries import tag_entries

#: Most values listed for one tag path (the most frequent first).
VALUE_LIMIT = 200
#: Instances a project may have for every file to be read; above it each series is sampled.
FULL_SCAN_LIMIT = 5000


@dataclass
class TagValues:
    """The values of one tag path, each with its count and the series carrying it."""

    tag_path: str
    keyword_path: str
    vr: str
    n_distinct: int
    values: list[tuple[str, int]]
    series: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: False when the series were found by sampling each series (see the module docstring).
    complete: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "tag_path": self.tag_path, "keyword_path": self.keyword_path, "vr": self.vr,
            "n_distinct": self.n_distinct, "complete": self.complete,
            "values": [{"value": v, "count": n, "series": self.series.get(v, [])}
                       for v, n in self.values],
        }


def _top_tags(tag_path: str) -> list[int]:
    """The top-level element of a path, and its private creator when it is private."""
    first = tag_path.split("/", 1)[0].split("@", 1)[0]
    try:
        tag = int(first, 16)
    except ValueError:
        return []
    group, element = tag >> 16, tag & 0xFFFF
    if group & 1 and element >= 0x0100:
        return [(group << 16) | (element >> 8), tag]
    return [tag]


def tag_values(inst: Installation, project: Project, tag_path: str,
               with_series: bool = True) -> TagValues:
    """The values of ``tag_path`` in ``project`` (NotFoundError when it has none)."""
    with inst.db.session() as session:
        row = session.get(TagInventory, (project.id, tag_path))
        if row is None:
            raise NotFoundError(f"tag path '{tag_path}' is not in the inventory of "
                                f"{project.acronym}")
        values = session.execute(
            select(TagValue.value, TagValue.n_instances)
            .where(TagValue.project_id == project.id, TagValue.tag_path == tag_path)
            .order_by(TagValue.n_instances.desc()).limit(VALUE_LIMIT)).all()
        found = TagValues(tag_path=tag_path, keyword_path=row.keyword_path, vr=row.vr,
                          n_distinct=row.n_distinct,
                          values=sorted(((v, n) for v, n in values), key=lambda x: (-x[1], x[0])))
    if with_series and found.values:
        found.series, found.complete = _series_by_value(
            inst, project, tag_path, {v for v, _ in found.values})
    return found


def _series_by_value(inst: Installation, project: Project, tag_path: str,
                     wanted: set[str]) -> tuple[dict[str, list[dict[str, Any]]], bool]:
    with inst.db.session() as session:
        total = session.scalar(select(func.count()).select_from(Instance)
                               .where(Instance.project_id == project.id)) or 0
        rows = session.execute(
            select(Instance.series_id, Instance.path)
            .where(Instance.project_id == project.id)
            .order_by(Instance.series_id, Instance.instance_number, Instance.sop_uid)).all()
        described = {
            series.id: {"id": series.id, "participant": research_id, "event": study.event,
                        "series_number": series.series_number, "modality": series.modality,
                        "series_description": series.series_description}
            for series, study, research_id in session.execute(
                select(Series, Study, Participant.research_id)
                .join(Study, Study.id == Series.study_id)
                .join(Participant, Participant.id == Study.participant_id)
                .where(Study.project_id == project.id))}
    complete = total <= FULL_SCAN_LIMIT
    paths_by_series: dict[int, list[str]] = defaultdict(list)
    for series_id, path in rows:
        paths_by_series[series_id].append(path)
    tags = _top_tags(tag_path)
    carriers: dict[str, set[int]] = defaultdict(set)
    for series_id, paths in paths_by_series.items():
        if not complete:
            paths = list(dict.fromkeys([paths[0], paths[len(paths) // 2], paths[-1]]))
        for path in paths:
            missing = wanted - {v for v, ids in carriers.items() if series_id in ids}
            if not missing:
                break  # every value already placed in this series
            try:
                ds = pydicom.dcmread(inst.settings.store_dir / path, stop_before_pixels=True,
                                     specific_tags=tags or None)
            except Exception:  # a file removed or damaged since: it carries nothing here
                continue
            for entry in tag_entries(ds):
                if entry.tag_path[:PATH_LENGTH] == tag_path and entry.value in wanted:
                    carriers[entry.value].add(series_id)
    series = {value: [described[i] for i in sorted(ids) if i in described]
              for value, ids in carriers.items()}
    return series, complete
