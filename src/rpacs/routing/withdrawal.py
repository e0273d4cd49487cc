"""Withdrawal: a participant leaves a project, their data goes, their patient is refused.

The index changes first, in one transaction: the participant's studies, series and instances
go, the tag inventory drops what they contributed, the withdrawal and the refused patients
(keyed hashes of their original PatientIDs) are recorded, and studies of theirs still in the
quarantine are refused. The store's folders go after, and the withdrawal records that they
did: a withdrawal interrupted in between is completed by running it again.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from pydicom import dcmread
from sqlalchemy import delete, select, update

from ..db import (
    AuditEvent,
    AutoIdMapping,
    Instance,
    Participant,
    QuarantineStudy,
    RefusedPatient,
    Series,
    Study,
    StudyPatientKey,
    Withdrawal,
)
from ..deid import quiet  # noqa: F401  (pydicom's value warnings off)
from ..errors import NotFoundError
from ..installation import Installation
from ..projects import get_project
from ..quarantine import StudyState
from ..review import remove_from_inventory, tag_entries


@dataclass(frozen=True)
class WithdrawalSummary:
    studies: int
    instances: int
    refused_patients: int
    already_withdrawn: bool = False


def withdraw_participant(inst: Installation, acronym: str, research_id: str,
                         actor: str = "cli") -> WithdrawalSummary:
    """Delete a participant's studies from the project and refuse their patient from now on."""
    project = get_project(inst, acronym)
    store = inst.settings.store_dir
    with inst.db.session() as session:
        withdrawal = session.scalar(select(Withdrawal).where(
            Withdrawal.project_id == project.id, Withdrawal.research_id == research_id))
        participant = session.scalar(select(Participant).where(
            Participant.project_id == project.id, Participant.research_id == research_id))
        if participant is None and withdrawal is None:
            raise NotFoundError(f"no participant with this ID in {project.acronym}")
        studies: list[Study] = []
        instances: list[tuple[int, str]] = []
        keys: set[str] = set()
        if participant is not None:
            studies = list(session.scalars(select(Study)
                                           .where(Study.participant_id == participant.id)))
            study_ids = [s.id for s in studies]
            instances = list(session.execute(
                select(Instance.id, Instance.path).join(Series, Series.id == Instance.series_id)
                .where(Series.study_id.in_(study_ids))))
            keys = {s.patient_key for s in studies if s.patient_key}
            keys |= set(session.scalars(select(StudyPatientKey.patient_key).where(
                StudyPatientKey.study_id.in_(study_ids))))
            keys |= set(session.scalars(select(AutoIdMapping.patient_key).where(
                AutoIdMapping.project_id == project.id,
                AutoIdMapping.research_id == research_id)))
            remove_from_inventory(session, project.id, (
                (frozenset(tag_entries(dcmread(store / path))),) for _id, path in instances
                if (store / path).is_file()))
            session.execute(delete(Instance).where(Instance.id.in_([i for i, _ in instances])))
            session.execute(delete(Series).where(Series.study_id.in_(study_ids)))
            session.execute(delete(Study).where(Study.id.in_(study_ids)))
            session.execute(delete(Participant).where(Participant.id == participant.id))
        if withdrawal is None:
            withdrawal = Withdrawal(project_id=project.id, research_id=research_id, paths=[],
                                    files_removed=False)
            session.add(withdrawal)
            session.flush()
        withdrawal.paths = sorted({*withdrawal.paths,
                                   *(f"{project.acronym}/{s.study_uid}" for s in studies)})
        withdrawal.files_removed = False
        known = set(session.scalars(select(RefusedPatient.patient_key)
                                    .where(RefusedPatient.project_id == project.id)))
        for key in sorted(keys - known):
            session.add(RefusedPatient(project_id=project.id, patient_key=key,
                                       withdrawal_id=withdrawal.id))
        if keys:
            # The project's own quarantined studies of the patient only. A waiting one,
            # of no project yet, may be meant for another project: it is refused when
            # someone assigns it here, and meanwhile nobody elsewhere learns of a withdrawal.
            session.execute(
                update(QuarantineStudy)
                .where(QuarantineStudy.patient_key.in_(keys),
                       QuarantineStudy.project_id == project.id)
                .values(state=StudyState.REFUSED.value,
                        note="refused: this patient withdrew from the project"))
        session.add(AuditEvent(actor=actor, action="participant.withdraw",
                               project_id=project.id, count=len(instances),
                               details={"participant": research_id, "studies": len(studies),
                                        "instances": len(instances)}))
        withdrawal_id, paths = withdrawal.id, list(withdrawal.paths)
    for relative in paths:
        shutil.rmtree(store / relative, ignore_errors=True)
    with inst.db.session() as session:
        session.execute(update(Withdrawal).where(Withdrawal.id == withdrawal_id)
                        .values(files_removed=True))
    return WithdrawalSummary(len(studies), len(instances), len(keys),
                             already_withdrawn=participant is None)
