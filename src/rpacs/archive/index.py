"""Writes de-identified instances into the index, a batch per transaction.

The store's files are written before the index rows that point at them, and the index is the
authority on what the archive holds: an import killed between the two leaves a file that no
row points at, which the rerun of the same import finds byte-identical and adopts. A batch is
one transaction, so the index never shows half a batch.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from ..db import Instance, Participant, Project, Series, Study, StudyPatientKey
from ..review import add_to_inventory
from .content import StoredInstance


class IndexOutcome(enum.Enum):
    STORED = "stored"
    PRESENT = "present"
    REJECTED = "rejected"


@dataclass(frozen=True)
class IndexResult:
    instance: StoredInstance
    outcome: IndexOutcome
    reason: str = ""


def _truncate(value: str, length: int) -> str:
    return value[:length]


def record_instances(
    session: Session,
    project: Project,
    participant: Participant,
    event: str,
    instances: Sequence[StoredInstance],
) -> list[IndexResult]:
    """Index ``instances`` for (participant, event); one result per instance, in order."""
    results: list[IndexResult] = []
    if not instances:
        return results
    study_uids = {i.study_uid for i in instances}
    studies = {
        s.study_uid: s
        for s in session.scalars(
            select(Study).where(Study.project_id == project.id, Study.study_uid.in_(study_uids))
        )
    }
    # sop_uid -> sha256 of what is indexed already (or earlier in this batch).
    known: dict[str, str] = {
        sop_uid: sha256
        for sop_uid, sha256 in session.execute(
            select(Instance.sop_uid, Instance.sha256).where(
                Instance.project_id == project.id,
                Instance.sop_uid.in_([i.sop_uid for i in instances]),
            )
        )
    }
    series_cache: dict[tuple[int, str], Series] = {}
    new_entries = []
    # Original patients a study arrived under besides its first (StudyPatientKey).
    other_keys: set[tuple[int, str]] = set()
    # Instance rows go in as one executemany at the end: an ORM object per file cost more
    # than the whole insert.
    rows: list[dict[str, object]] = []
    for item in instances:
        existing = known.get(item.sop_uid)
        if existing is not None:
            if existing == item.sha256:
                results.append(IndexResult(item, IndexOutcome.PRESENT))
                present = studies.get(item.study_uid)
                if present is not None and item.patient_key not in ("", present.patient_key):
                    other_keys.add((present.id, item.patient_key))
            else:
                results.append(
                    IndexResult(
                        item,
                        IndexOutcome.REJECTED,
                        "an instance with this SOPInstanceUID is already stored with different "
                        "content (another participant or event, or a changed profile)",
                    )
                )
            continue
        study = studies.get(item.study_uid)
        if study is None:
            study = Study(
                project_id=project.id,
                participant_id=participant.id,
                event=event,
                study_uid=item.study_uid,
                study_id=_truncate(item.study_id, 16),
                study_date=item.study_date[:8],
                study_time=_truncate(item.study_time, 16),
                study_description=_truncate(item.study_description, 64),
                patient_key=item.patient_key,
                modalities="",
            )
            session.add(study)
            session.flush()
            studies[item.study_uid] = study
        elif study.participant_id != participant.id or study.event != event:
            results.append(
                IndexResult(
                    item,
                    IndexOutcome.REJECTED,
                    "this study is already stored for another participant or event of the project",
                )
            )
            continue
        if item.patient_key not in ("", study.patient_key):
            other_keys.add((study.id, item.patient_key))
        series = series_cache.get((study.id, item.series_uid))
        if series is None:
            series = session.scalar(
                select(Series).where(
                    Series.study_id == study.id, Series.series_uid == item.series_uid
                )
            )
            if series is None:
                series = Series(
                    study_id=study.id,
                    series_uid=item.series_uid,
                    modality=_truncate(item.modality, 16),
                    series_number=item.series_number,
                    series_description=_truncate(item.series_description, 64),
                    body_part=_truncate(item.body_part, 16),
                    series_date=item.series_date[:8],
                    n_instances=0,
                )
                session.add(series)
                session.flush()
                study.n_series += 1
                if item.modality and item.modality not in study.modalities.split("\\"):
                    study.modalities = "\\".join(
                        sorted(filter(None, [*study.modalities.split("\\"), item.modality]))
                    )[:64]
            series_cache[(study.id, item.series_uid)] = series
        rows.append({
            "project_id": project.id,
            "series_id": series.id,
            "sop_uid": item.sop_uid,
            "sop_class_uid": item.sop_class_uid,
            "instance_number": item.instance_number,
            "transfer_syntax": item.transfer_syntax,
            "rows": item.rows,
            "columns": item.columns,
            "frames": item.frames,
            "path": item.relative_path,
            "size": item.size,
            "sha256": item.sha256,
        })
        known[item.sop_uid] = item.sha256
        series.n_instances += 1
        study.n_instances += 1
        new_entries.append(item.tag_groups)
        results.append(IndexResult(item, IndexOutcome.STORED))
    session.flush()
    if rows:
        session.execute(insert(Instance), rows)
    if other_keys:
        recorded = set(session.execute(
            select(StudyPatientKey.study_id, StudyPatientKey.patient_key).where(
                StudyPatientKey.study_id.in_({study_id for study_id, _ in other_keys}))))
        session.add_all(StudyPatientKey(study_id=study_id, patient_key=key)
                        for study_id, key in sorted(other_keys - recorded))
    add_to_inventory(session, project.id, new_entries)
    return results
