"""Import into the project archive, and de-identification from folder to folder.

The parent process names the sources and owns the database; worker processes read,
de-identify and write files (see :mod:`rpacs.ingest.worker`, run by
:mod:`rpacs.ingest.pool`). Results come back as they are done and are committed to the
index in batches, one transaction each, so a killed import leaves a consistent index and a
rerun completes it: files already written are found byte-identical and adopted.

This module and what it imports load no pydicom: the parent only names sources, passes the
plan on and counts what comes back, while the workers (started first by the command line,
so that their imports run beside this module's) do everything that reads DICOM.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from ..archive import (
    FileStore,
    IndexOutcome,
    IndexResult,
    StoredInstance,
    record_instances,
)
from ..db import AuditEvent, Instance, Project, RefusedPatient, Study, StudyPatientKey
from ..deid.identity import Identity
from ..errors import ConflictError, InvalidInputError
from ..installation import Installation
from ..projects import (
    check_assignment,
    date_offset_for,
    get_or_create_participant,
    get_project,
)
from .content import ImportSummary, NotDicom, Outcome, Rejection
from .plan import WorkPlan
from .pool import WorkerPool
from .sources import RefusedSource, Source, iter_sources

Progress = Callable[[int, int], None]

#: Instances per index transaction: large enough to amortise the commit, small enough that
#: a kill loses little work and progress stays visible.
BATCH_SIZE = 500
#: Towards the end of a run batches shrink to half of what is left, down to this: the last
#: batch is committed after the workers have finished, so its size is time nobody shares.
MIN_BATCH_SIZE = 32
#: Sources per task sent to a worker, at least: amortises inter-process overhead.
CHUNK_SIZE = 16
#: ... and at most: a large run is cut into about this many tasks per worker (the pool's
#: bookkeeping costs the parent per task; the last task's imbalance costs per file).
TASKS_PER_WORKER = 16
MAX_CHUNK_SIZE = 64
#: A temporary file this old belongs to no live writer (each write takes milliseconds).
STALE_SECONDS = 600


def _plan(
    inst: Installation,
    project: Project,
    participant: str,
    event: str,
    store: FileStore,
    path_prefix: str,
    *,
    index: bool = True,
) -> WorkPlan:
    return WorkPlan(
        profile_yaml=project.deid_profile or None,
        project_secret=project.secret,
        identity=Identity(participant_id=participant, project_acronym=project.acronym, event=event),
        date_offset_days=date_offset_for(project, participant),
        installation_secret=inst.settings.installation_secret,
        store=store,
        path_prefix=path_prefix,
        index=index,
    )


def _chunks(items: Sequence[Source], size: int) -> Iterator[list[Source]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _chunk_size(n_sources: int, workers: int) -> int:
    """Sources per task: about TASKS_PER_WORKER tasks per worker, within the bounds."""
    return min(MAX_CHUNK_SIZE, max(CHUNK_SIZE, n_sources // (workers * TASKS_PER_WORKER)))


def _run(plan: WorkPlan, sources: Sequence[Source], workers: int,
         pool: WorkerPool | None) -> Iterator[Outcome]:
    """Outcomes in completion order: from ``pool`` when it is started, else from
    ``workers`` processes started here (``pool.size`` when a pool is given), or from this
    process for one worker or a few sources."""
    with ExitStack() as stack:
        # A started pool's workers have done their imports while this process did its own:
        # even a small run goes to them, so that this process never loads pydicom.
        if pool is None or not pool.started:
            if pool is not None:
                workers = pool.size
            # Loaded here first, so that workers forked below inherit it rather than each
            # loading pydicom again (the web app and the gateway import study after study).
            from .worker import Worker

            if workers <= 1 or len(sources) <= CHUNK_SIZE:
                worker = Worker(plan)
                for source in sources:
                    yield worker.process(source)
                return
            pool = stack.enter_context(WorkerPool(workers))
        for outcomes in pool.run(plan, _chunks(sources, _chunk_size(len(sources), pool.size))):
            yield from outcomes


def _drive(plan: WorkPlan, sources: Sequence[Source], workers: int, pool: WorkerPool | None,
           summary: ImportSummary, stored: Callable[[StoredInstance], None],
           progress: Progress | None) -> None:
    """Run the workers; count what is not stored, hand on what is, report progress."""
    done = len(summary.rejected)
    total = len(sources) + done
    for outcome in _run(plan, sources, workers, pool):
        if isinstance(outcome, StoredInstance):
            stored(outcome)
        elif isinstance(outcome, NotDicom):
            summary.skipped.append(outcome)
        else:
            summary.rejected.append(outcome)
        done += 1
        if progress is not None:
            progress(done, total)


#: Times a batch is indexed again after another import's transaction clashed with it.
INDEX_ATTEMPTS = 3


def _index_batch(inst: Installation, project_id: int, participant: str, event: str,
                 batch: list[StoredInstance]) -> tuple[list[IndexResult], set[str]]:
    """Index ``batch`` in one transaction: its results, and which of the paths of the
    instances it refused are indexed all the same (by another import).

    Two imports of one study at the same time (two staff members with the same CD, the
    DICOM service and a command line) may both find the study new, and the second to
    commit breaks a unique constraint. Its transaction is rolled back whole and the batch
    indexed again, now finding the other's rows.
    """
    clash: IntegrityError | None = None
    for _ in range(INDEX_ATTEMPTS):
        try:
            with inst.db.session() as session:
                row = session.get(Project, project_id)
                assert row is not None
                person = get_or_create_participant(session, row, participant)
                results = list(record_instances(session, row, person, event, batch))
                if all(r.outcome is IndexOutcome.REJECTED for r in results) and \
                        session.scalar(select(Study.id).where(
                            Study.participant_id == person.id).limit(1)) is None:
                    # Nothing of the batch stored, and nothing before: no phantom
                    # participant (a study refused as another participant's, say).
                    session.delete(person)
                refused = [r.instance.relative_path for r in results
                           if r.outcome is IndexOutcome.REJECTED and r.instance.created]
                indexed = set(session.scalars(select(Instance.path).where(
                    Instance.project_id == project_id, Instance.path.in_(refused)))) \
                    if refused else set()
            return results, indexed
        except IntegrityError as exc:
            clash = exc
    raise ConflictError(
        "another import of the same studies kept changing the index; run this import "
        "again (what is stored stays, and is found present)") from clash


def _collect(paths: Sequence[Path], summary: ImportSummary) -> list[Source]:
    sources: list[Source] = []
    for item in iter_sources(paths):
        if isinstance(item, RefusedSource):
            summary.rejected.append(Rejection(item.name, item.reason))
        else:
            sources.append(item)
    return sources


def _remove_stale_temporary_files(tmp_dir: Path) -> None:
    if not tmp_dir.is_dir():
        return
    limit = time.time() - STALE_SECONDS
    for leftover in tmp_dir.glob("put-*.part"):
        try:
            if leftover.stat().st_mtime < limit:
                leftover.unlink()
        except FileNotFoundError:
            pass


def import_paths(
    inst: Installation,
    acronym: str,
    participant: str,
    event: str,
    paths: Sequence[Path],
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    actor: str = "cli",
    pool: WorkerPool | None = None,
) -> ImportSummary:
    """De-identify every DICOM file under ``paths`` into the project's archive.

    The assignment (participant, event) is checked against the project before any file is
    read. Re-importing the same files changes nothing; the summary counts them as present.
    The work runs in ``pool`` when one is given and started (the command line starts it
    before opening the database), else in ``workers`` processes (default: the settings').
    """
    project = get_project(inst, acronym)
    check_assignment(project, participant, event)
    settings = inst.settings
    store = FileStore(settings.store_dir, settings.tmp_dir)
    _remove_stale_temporary_files(settings.tmp_dir)
    summary = ImportSummary()
    sources = _collect(paths, summary)
    plan = _plan(inst, project, participant, event, store, project.acronym)
    pending: list[StoredInstance] = []
    studies: set[str] = set()
    series: set[str] = set()

    refused = refused_patients(inst, project.id)

    def commit() -> None:
        if not pending:
            return  # nothing stored: not even the participant is registered
        if refused:
            # A withdrawn participant's original patient: never stored in this project again.
            for item in [i for i in pending if i.patient_key in refused]:
                pending.remove(item)
                plan.store.remove(item.relative_path)
                summary.rejected.append(Rejection(
                    item.source, "refused: this patient withdrew from the project"))
            if not pending:
                return
        results, indexed = _index_batch(inst, project.id, participant, event, pending)
        unwanted: list[str] = []
        for result in results:
            if result.outcome is IndexOutcome.STORED:
                summary.stored += 1
            elif result.outcome is IndexOutcome.PRESENT:
                summary.present += 1
            else:
                summary.rejected.append(Rejection(result.instance.source, result.reason))
                # What this import wrote for an instance the index refused (a study
                # already stored for another participant or event) goes again, unless
                # another import indexed the same file meanwhile.
                if result.instance.created and result.instance.relative_path not in indexed:
                    unwanted.append(result.instance.relative_path)
                continue
            studies.add(result.instance.study_uid)
            series.add(result.instance.series_uid)
        for relative in unwanted:
            plan.store.remove(relative)
        pending.clear()

    handled = 0

    def stored(instance: StoredInstance) -> None:
        nonlocal handled
        handled += 1
        pending.append(instance)
        left = len(sources) - handled - summary.not_dicom
        if len(pending) >= max(MIN_BATCH_SIZE, min(BATCH_SIZE, left // 2)):
            commit()

    _drive(plan, sources, workers or settings.worker_count, pool, summary, stored, progress)
    commit()
    summary.studies, summary.series = len(studies), len(series)
    _audit(inst, actor, "import", project.id, summary, participant=participant, event=event)
    return summary


def _check_apart(src: Path, dst: Path) -> None:
    """SRC and DST must not hold one another: the output would be read as input (and
    de-identified again), or the originals would sit in the folder handed on as
    de-identified."""
    src, dst = src.resolve(), dst.resolve()
    if dst.is_relative_to(src):
        raise InvalidInputError(f"{dst}: DST is inside SRC ({src}); choose a folder outside it")
    if src.is_relative_to(dst):
        raise InvalidInputError(f"{dst}: DST holds SRC ({src}), so the originals would be "
                                "among the de-identified files; choose another folder")


def deidentify_tree(
    inst: Installation,
    acronym: str,
    participant: str,
    event: str | None,
    src: Path,
    dst: Path,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    actor: str = "cli",
    pool: WorkerPool | None = None,
) -> ImportSummary:
    """The import's de-identification from ``src`` to ``dst`` without touching the archive.

    Files land as ``dst/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` with the
    project's de-identified UIDs, so that no original file name (often a patient's name)
    is carried over. ``summary.stored`` counts files written. ``pool`` and ``workers`` as
    for :func:`import_paths`.
    """
    project = get_project(inst, acronym)
    event = event or project.events[0]
    check_assignment(project, participant, event)
    dst = Path(dst)
    _check_apart(Path(src), dst)
    tmp_dir = dst / ".rpacs-tmp"
    store = FileStore(dst, tmp_dir)
    summary = ImportSummary()
    sources = _collect([Path(src)], summary)
    plan = _plan(inst, project, participant, event, store, "", index=False)
    studies: set[str] = set()
    series: set[str] = set()

    def written(instance: StoredInstance) -> None:
        summary.stored += 1
        studies.add(instance.study_uid)
        series.add(instance.series_uid)

    try:
        _drive(plan, sources, workers or inst.settings.worker_count, pool, summary, written,
               progress)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    summary.studies, summary.series = len(studies), len(series)
    _audit(inst, actor, "deid", project.id, summary, participant=participant, event=event)
    return summary


def _audit(
    inst: Installation,
    actor: str,
    action: str,
    project_id: int,
    summary: ImportSummary,
    **details: str,
) -> None:
    with inst.db.session() as session:
        session.add(
            AuditEvent(
                actor=actor,
                action=action,
                project_id=project_id,
                count=summary.stored,
                details={
                    **details,
                    "stored": summary.stored,
                    "present": summary.present,
                    "not_dicom": summary.not_dicom,
                    "rejected": len(summary.rejected),
                },
            )
        )


def refused_patients(inst: Installation, project_id: int) -> set[str]:
    """Keyed hashes of the original patients a project refuses (they withdrew)."""
    with inst.db.session() as session:
        return set(session.scalars(select(RefusedPatient.patient_key)
                                   .where(RefusedPatient.project_id == project_id)))


def studies_of_patient(inst: Installation, patient_key: str) -> list[tuple[str, str]]:
    """(project acronym, StudyInstanceUID) of every stored study with this patient key:
    the first a study arrived under, or another (:class:`~rpacs.db.StudyPatientKey`)."""
    others = select(StudyPatientKey.study_id).where(StudyPatientKey.patient_key == patient_key)
    with inst.db.session() as session:
        rows = session.execute(
            select(Project.acronym, Study.study_uid)
            .join(Study, Study.project_id == Project.id)
            .where(or_(Study.patient_key == patient_key, Study.id.in_(others)))
            .order_by(Project.acronym, Study.study_uid)
        )
        return [(a, s) for a, s in rows]
