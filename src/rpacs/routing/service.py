"""Assigning received studies to project, participant and event, and importing them.

A study leaves the quarantine in one of four ways: by hand (``rpacs assign``, the web app's
Assign page), by a coupling-list entry for its AccessionNumber, by an auto-ID project's AE
title, or by a routing rule — tried in that order once the study is complete. Instances
arriving after the assignment follow it. Every assignment is audited with its reason, and
the study's instances go through the core import (:func:`rpacs.ingest.import_paths`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

from pydicom import dcmread
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from ..db import (
    AuditEvent,
    AutoIdMapping,
    AutoIdProject,
    Project,
    QuarantineInstance,
    QuarantineStudy,
    RefusedPatient,
    RoutingRule,
    Withdrawal,
)
from ..deid import quiet  # noqa: F401  (pydicom's value warnings off)
from ..errors import ConflictError, InvalidInputError, NotFoundError, RpacsError
from ..ingest import import_paths
from ..installation import Installation
from ..net.remotes import check_ae_title
from ..projects import check_assignment, get_project
from ..quarantine import InstanceState, Quarantine, StudyState, utcnow, visible_to
from .autoid import check_auto_id_pattern
from .content import Assignment, Outcome, Reason
from .coupling import coupling_entry
from .rules import rule_matches

LOG = logging.getLogger("rpacs.routing")
#: Tries to draw an unused auto-ID before giving up (the pattern's space is nearly full).
_DRAWS = 1000


# --- by hand ---------------------------------------------------------------------------


def assign_study(inst: Installation, study_uid: str, acronym: str, participant: str,
                 event: str, *, actor: str = "cli", workers: int | None = None) -> Outcome:
    """Assign a quarantined study by hand and import it; InvalidInputError if it cannot be.

    The participant must fit the project's pattern and the event be one of the project's;
    a study already assigned elsewhere (ConflictError), or of a patient who withdrew, is
    refused. For the command line, whose user sees every project.
    """
    return _assign(inst, Quarantine(inst).study_id(study_uid), acronym, participant, event,
                   actor=actor, workers=workers)


def assign_received(inst: Installation, study_id: int, acronym: str, participant: str,
                    event: str, *, actor: str, project_ids: Collection[int],
                    workers: int | None = None) -> Outcome:
    """:func:`assign_study` for a web user who may assign into ``project_ids``, the study
    named by its number in the quarantine.

    A study assigned to a project not among ``project_ids`` is not found, word for word as
    a number that does not exist: whether another project holds it is that project's
    business. One assigned to a project of theirs, differently, is a ConflictError.
    """
    return _assign(inst, study_id, acronym, participant, event, actor=actor, workers=workers,
                   project_ids=project_ids)


def _assign(inst: Installation, study_id: int, acronym: str, participant: str, event: str,
            *, actor: str, workers: int | None,
            project_ids: Collection[int] | None = None) -> Outcome:
    project = get_project(inst, acronym)
    with inst.db.session() as session:
        study = session.get(QuarantineStudy, study_id)
        if study is None or (project_ids is not None and not visible_to(study, project_ids)):
            raise NotFoundError(f"no study {study_id} in the quarantine")
        assigned = study.state == StudyState.ASSIGNED and (
            study.project_id, study.participant, study.event) != (project.id, participant, event)
    check_assignment(project, participant, event)
    if assigned:
        raise ConflictError("this study is already assigned to another project, "
                            "participant or event")
    assignment = Assignment(project.id, participant, event, Reason.USER, actor)
    return apply_assignment(inst, study_id, assignment, actor=actor, workers=workers)


# --- automatically ---------------------------------------------------------------------


def route_study(inst: Installation, study_id: int, *, actor: str = "gateway") -> Outcome:
    """Find an automatic assignment for a complete study and apply it, or leave it waiting."""
    with inst.db.session() as session:
        study = session.get(QuarantineStudy, study_id)
        if study is None or study.state != StudyState.COMPLETE:
            return Outcome(study.state if study else "", "not waiting for an assignment")
        accession, called, calling, key = (study.accession_number, study.called_ae,
                                           study.calling_ae, study.patient_key)
    assignment, note = _automatic(inst, study_id, accession, called, calling, key)
    if assignment is None:
        _set_note(inst, study_id, note)
        return Outcome(StudyState.COMPLETE.value, note)
    try:
        return apply_assignment(inst, study_id, assignment, actor=actor, workers=1)
    except InvalidInputError as exc:
        note = f"{assignment.reason.value}: {'; '.join(exc.problems)}"[:200]
        _set_note(inst, study_id, note)
        return Outcome(StudyState.COMPLETE.value, note)


def _automatic(inst: Installation, study_id: int, accession: str, called: str, calling: str,
               key: str) -> tuple[Assignment | None, str]:
    entry = coupling_entry(inst, accession)
    if entry is not None:
        return Assignment(entry.project_id, entry.participant, entry.event,
                          Reason.COUPLING_LIST), ""
    with inst.db.session() as session:
        auto = session.scalar(select(AutoIdProject).where(AutoIdProject.ae_title == called,
                                                          AutoIdProject.enabled.is_(True)))
        rules = list(session.scalars(select(RoutingRule).where(RoutingRule.active.is_(True))
                                     .order_by(RoutingRule.id)))
    if auto is not None:
        if not key:
            return None, "auto-ID: the study has no PatientID to key the participant on"
        research_id = auto_id_for(inst, auto.project_id, key)
        return Assignment(auto.project_id, research_id, auto.event, Reason.AUTO_ID), ""
    if rules:
        patient_id, patient_name = _patient_of(inst, study_id)
        for rule in rules:
            if rule_matches(rule, called_ae=called, calling_ae=calling,
                            patient_id=patient_id, patient_name=patient_name):
                return Assignment(rule.project_id, patient_id, rule.event, Reason.RULE,
                                  str(rule.id)), ""
    return None, "no coupling-list entry, auto-ID AE title or routing rule matched"


def _patient_of(inst: Installation, study_id: int) -> tuple[str, str]:
    """PatientID and PatientName of a study, read from one of its originals (never stored)."""
    quarantine = Quarantine(inst)
    with inst.db.session() as session:
        row = session.execute(
            select(QuarantineStudy.folder, QuarantineInstance.file)
            .join(QuarantineInstance, QuarantineInstance.study_id == QuarantineStudy.id)
            .where(QuarantineStudy.id == study_id,
                   QuarantineInstance.state == InstanceState.RECEIVED).limit(1)).first()
    if row is None:
        return "", ""
    try:
        ds = dcmread(quarantine.store.path_of(*row), stop_before_pixels=True,
                     specific_tags=["SpecificCharacterSet", "PatientID", "PatientName"])
    except Exception:
        return "", ""
    return str(ds.get("PatientID", "") or "").strip(), str(ds.get("PatientName", "") or "")


def auto_id_for(inst: Installation, project_id: int, patient_key: str) -> str:
    """The research ID of an original patient in an auto-ID project: drawn once, then kept.

    The mapping holds the keyed hash of the original PatientID, never the ID itself.
    """
    with inst.db.session() as session:
        known = session.scalar(select(AutoIdMapping.research_id).where(
            AutoIdMapping.project_id == project_id, AutoIdMapping.patient_key == patient_key))
        if known is not None:
            return known
        project = session.get(Project, project_id)
        assert project is not None
        template = check_auto_id_pattern(project.participant_pattern)
        withdrawn = set(session.scalars(select(Withdrawal.research_id)
                                        .where(Withdrawal.project_id == project_id)))
        for _ in range(_DRAWS):
            candidate = template.draw()
            if candidate in withdrawn:
                continue
            try:
                with session.begin_nested():
                    session.add(AutoIdMapping(project_id=project_id, patient_key=patient_key,
                                              research_id=candidate))
                return candidate
            except IntegrityError:  # drawn before (or the same patient, concurrently)
                again = session.scalar(select(AutoIdMapping.research_id).where(
                    AutoIdMapping.project_id == project_id,
                    AutoIdMapping.patient_key == patient_key))
                if again is not None:
                    return again
    raise RpacsError(f"auto-ID of {project.acronym}: no unused participant ID found; "
                     "the pattern's IDs are nearly used up")


def set_auto_id(inst: Installation, acronym: str, ae_title: str | None, event: str | None,
                *, enabled: bool = True, actor: str = "cli") -> None:
    """Turn auto-ID on (with the AE title studies are sent to) or off for a project."""
    project = get_project(inst, acronym)
    with inst.db.session() as session:
        row = session.get(AutoIdProject, project.id)
        if not enabled:
            if row is not None:
                row.enabled = False
            session.add(AuditEvent(actor=actor, action="project.auto-id", project_id=project.id,
                                   count=1, details={"enabled": False}))
            return
    problems: list[str] = []
    title = ""
    try:
        title = check_ae_title(ae_title or "", "--ae-title")
    except InvalidInputError as exc:
        problems.extend(exc.problems)
    event = event or project.events[0]
    if event not in project.events:
        problems.append(f"--event: '{event}' is not an event of {project.acronym}")
    try:
        check_auto_id_pattern(project.participant_pattern)
    except InvalidInputError as exc:
        problems.extend(exc.problems)
    if problems:
        raise InvalidInputError(problems)
    with inst.db.session() as session:
        clash = session.scalar(select(AutoIdProject).where(AutoIdProject.ae_title == title,
                                                           AutoIdProject.project_id != project.id))
        if clash is not None:
            raise ConflictError(f"--ae-title: {title} is already the auto-ID AE title of "
                                "another project")
        row = session.get(AutoIdProject, project.id)
        if row is None:
            session.add(AutoIdProject(project_id=project.id, ae_title=title, event=event,
                                      enabled=True))
        else:
            row.ae_title, row.event, row.enabled = title, event, True
        session.add(AuditEvent(actor=actor, action="project.auto-id", project_id=project.id,
                               count=1, details={"enabled": True, "ae_title": title,
                                                 "event": event}))


# --- applying and importing ------------------------------------------------------------


def _set_note(inst: Installation, study_id: int, note: str) -> None:
    with inst.db.session() as session:
        session.execute(update(QuarantineStudy).where(QuarantineStudy.id == study_id)
                        .values(note=note[:200]))


def _refusal(inst: Installation, study_id: int, assignment: Assignment) -> str | None:
    with inst.db.session() as session:
        key = session.scalar(select(QuarantineStudy.patient_key)
                             .where(QuarantineStudy.id == study_id))
        refused = key and session.get(RefusedPatient, (assignment.project_id, key))
        withdrawn = session.scalar(select(Withdrawal.id).where(
            Withdrawal.project_id == assignment.project_id,
            Withdrawal.research_id == assignment.participant))
    if refused:
        return "refused: this patient withdrew from the project"
    if withdrawn is not None:
        return "refused: this participant withdrew from the project"
    return None


def apply_assignment(inst: Installation, study_id: int, assignment: Assignment, *,
                     actor: str, workers: int | None = None) -> Outcome:
    """Record the assignment (audited with its reason) and import the study's instances."""
    with inst.db.session() as session:
        project = session.get(Project, assignment.project_id)
        if project is None:
            raise NotFoundError("the project of this assignment no longer exists")
    check_assignment(project, assignment.participant, assignment.event)
    refusal = _refusal(inst, study_id, assignment)
    now = utcnow()
    with inst.db.session() as session:
        details = {"quarantine_study": study_id, "participant": assignment.participant,
                   "event": assignment.event, "reason": assignment.reason.value}
        if assignment.detail:
            details["rule" if assignment.reason is Reason.RULE else "by"] = assignment.detail
        # Written only if nobody assigned the study otherwise since the caller looked (two
        # data managers on the same study, or a person and a rule): the condition is in the
        # UPDATE itself, so the second of two writers finds no row to change.
        unassigned_or_same = (
            (QuarantineStudy.state != StudyState.ASSIGNED.value)
            | ((QuarantineStudy.project_id == project.id)
               & (QuarantineStudy.participant == assignment.participant)
               & (QuarantineStudy.event == assignment.event)))
        change = update(QuarantineStudy).where(QuarantineStudy.id == study_id,
                                               unassigned_or_same)
        if refusal is not None:
            # The refusal is the project's business: the study becomes its (as an
            # assignment would have made it), so that no other project's assigners see that
            # this patient withdrew from somewhere.
            done = session.execute(change.values(state=StudyState.REFUSED.value, note=refusal,
                                                 project_id=project.id))
            action, outcome = "gateway.refuse", Outcome(
                StudyState.REFUSED.value, refusal, assignment.reason.value)
        else:
            done = session.execute(change.values(
                state=StudyState.ASSIGNED.value, project_id=project.id,
                participant=assignment.participant, event=assignment.event,
                assigned_by=assignment.reason.value, assigned_at=now, note=""))
            action, outcome = "assign", None
        if done.rowcount != 1:
            raise ConflictError("this study was assigned to another project, participant or "
                                "event meanwhile; reload and look again")
        session.add(AuditEvent(actor=actor, action=action, project_id=project.id, count=1,
                               details=details))
    if outcome is not None:
        return outcome
    imported, rejected = import_assigned(inst, study_id, actor=actor, workers=workers)
    return Outcome(StudyState.ASSIGNED.value, "", assignment.reason.value, imported, rejected)


def import_assigned(inst: Installation, study_id: int, *, actor: str = "gateway",
                    workers: int | None = None) -> tuple[int, int]:
    """Import an assigned study's instances not imported yet; (imported, rejected).

    An imported original is deleted from the quarantine (the archive holds its
    de-identified copy); a rejected one stays until the retention purge, with its reason
    in the import's audit record.
    """
    quarantine = Quarantine(inst)
    with inst.db.session() as session:
        study = session.get(QuarantineStudy, study_id)
        if study is None or study.state != StudyState.ASSIGNED or study.project_id is None:
            return 0, 0
        project = session.get(Project, study.project_id)
        assert project is not None
        acronym, participant, event, folder = (project.acronym, study.participant,
                                               study.event, study.folder)
        pending = list(session.execute(
            select(QuarantineInstance.id, QuarantineInstance.file)
            .where(QuarantineInstance.study_id == study_id,
                   QuarantineInstance.state == InstanceState.RECEIVED)))
    if not pending:
        return 0, 0
    assert participant is not None and event is not None
    paths = {str(quarantine.store.path_of(folder, file)): row_id for row_id, file in pending}
    summary = import_paths(inst, acronym, participant, event, [Path(p) for p in paths],
                           workers=workers or 1, actor=actor)
    rejected = {paths[r.source] for r in summary.rejected if r.source in paths}
    with inst.db.session() as session:
        for source, row_id in paths.items():
            state = InstanceState.REJECTED if row_id in rejected else InstanceState.IMPORTED
            session.execute(update(QuarantineInstance).where(QuarantineInstance.id == row_id)
                            .values(state=state.value))
            if state is InstanceState.IMPORTED:
                Path(source).unlink(missing_ok=True)
        if rejected:
            reasons = sorted({r.reason for r in summary.rejected})[:3]
            session.execute(update(QuarantineStudy).where(QuarantineStudy.id == study_id)
                            .values(note=f"{len(rejected)} instance(s) not imported: "
                                        f"{'; '.join(reasons)}"[:200]))
    return len(paths) - len(rejected), len(rejected)
