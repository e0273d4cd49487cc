"""The quarantine: receive originals, notice complete studies, list and purge them.

Every received instance is written to the quarantine store first and recorded in the index
after, in one short transaction. A study is *complete* when no instance arrived for the
study timeout; it is then routed (see :mod:`rpacs.routing`). Nothing here logs or raises a
value of the data: the quarantine is identifying by design and stays out of the logs.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import queue
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache

from pydicom import Dataset, dcmread
from pydicom.errors import InvalidDicomError
from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from ..db import Project, QuarantineInstance, QuarantineStudy, upsert
from ..deid import (
    TextCleaner,
    identifying_values,
    quiet,  # noqa: F401  (pydicom's value warnings off)
)
from ..errors import DicomInputError, NotFoundError, StorageError
from ..ingest import patient_key
from ..installation import Installation
from .content import (
    Arrival,
    InstanceHeader,
    InstanceState,
    PurgeSummary,
    QuarantineEntry,
    StudyState,
)
from .header import FOR_CLEANING, WANTED, scan_header
from .store import QuarantineStore

LOG = logging.getLogger("rpacs.quarantine")
#: Received instances recorded per index transaction by the gateway's recorder.
RECORD_BATCH = 500
#: Seconds after which the gateway imports what an assignment's own import left behind.
ASSIGNER_GRACE = 600.0
#: Seconds the recorder lets instances gather before it writes them: a transaction costs
#: about as much CPU as a few instances take to receive.
RECORD_WINDOW = 0.25


def visible_to(study: QuarantineStudy, project_ids: Collection[int]) -> bool:
    """Whether a user of ``project_ids`` may see quarantined ``study``: one of no project
    yet (waiting), or one assigned to or refused by a project of theirs."""
    return study.project_id is None or study.project_id in project_ids


def _visible(project_ids: Collection[int]) -> ColumnElement[bool]:
    """:func:`visible_to` as a condition of a query."""
    return or_(QuarantineStudy.project_id.is_(None),
               QuarantineStudy.project_id.in_(list(project_ids)))


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; every time rpacs writes is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _text(ds: object, keyword: str) -> str:
    value = getattr(ds, keyword, "")
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return str(value or "").strip()


@lru_cache(maxsize=1024)
def shown_description(description: str, patient_name: str, patient_id: str,
                      birth_date: str) -> str:
    """The StudyDescription as the quarantine keeps and lists it: Cleaned of the patient's
    own name, ID and birth date and of identifying patterns (a clinical description may
    well carry them, and the list must never show who the patient is)."""
    if not description:
        return description
    ds = Dataset()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = patient_name, patient_id, birth_date
    return TextCleaner(identifying_values(ds)).clean(description)


def read_header(data: bytes, installation_secret: bytes, source: str = "received dataset"
                ) -> InstanceHeader:
    """The indexed values of an instance in the DICOM file format; never decodes pixels.

    The common file is read by :func:`~rpacs.quarantine.header.scan_header`, any other
    by pydicom.
    """
    values = scan_header(data)
    if values is None:
        try:
            ds = dcmread(io.BytesIO(data), stop_before_pixels=True,
                         specific_tags=[*WANTED.values(), *FOR_CLEANING.values()])
            values = {keyword: _text(ds, keyword)
                      for keyword in (*WANTED.values(), *FOR_CLEANING.values())}
        except (InvalidDicomError, ValueError, TypeError, EOFError, OSError,
                LookupError) as exc:
            raise DicomInputError(source, f"not a readable DICOM dataset "
                                          f"({type(exc).__name__})") from exc
    header = InstanceHeader(
        sop_uid=values["SOPInstanceUID"][:64],
        series_uid=values["SeriesInstanceUID"][:64],
        study_uid=values["StudyInstanceUID"][:64],
        patient_key=patient_key(installation_secret, values["PatientID"][:64]),
        study_date=values["StudyDate"][:8],
        modality=values["Modality"][:16],
        study_description=shown_description(
            values["StudyDescription"], values["PatientName"], values["PatientID"],
            values["PatientBirthDate"])[:64],
        accession_number=values["AccessionNumber"][:16],
    )
    missing = [k for k in ("sop_uid", "series_uid", "study_uid") if not getattr(header, k)]
    if missing:
        raise DicomInputError(source, f"no {', '.join(missing)} (required to file it)")
    return header


@dataclass(frozen=True)
class _Received:
    header: InstanceHeader
    arrival: Arrival
    folder: str
    file: str
    size: int


class Quarantine:
    """The quarantine of one installation: its store and its rows in the index.

    With ``background=True`` (the gateway) received instances are recorded in the index by
    a recorder thread, a batch per transaction, so that a C-STORE costs one file write and
    not one database commit: the file is in place before success is answered, and a file
    whose record was lost with a killed process is recorded by :meth:`recover` on start,
    or again when it is resent.
    """

    def __init__(self, inst: Installation, *, background: bool = False):
        self.inst = inst
        self.store = QuarantineStore(inst.settings.quarantine_dir,
                                     inst.settings.installation_secret)
        self._queue: queue.Queue[_Received] | None = None
        self._failed: str | None = None
        if background:
            self._queue = queue.Queue()
            self._recorder = threading.Thread(target=self._record_forever,
                                              name="rpacs-quarantine-recorder", daemon=True)
            self._recorder.start()

    # --- receiving -------------------------------------------------------------------

    def receive(self, data: bytes, arrival: Arrival) -> bool:
        """File one received instance (DICOM file format bytes, as sent).

        True when it was new, False when the same instance was already in the quarantine
        (a resend). Raises DicomInputError for data that cannot be filed and StorageError
        when it cannot be written or recorded; nothing partial is kept in either case.
        """
        if self._failed is not None:
            raise StorageError(f"the quarantine index cannot be written ({self._failed})")
        header = read_header(data, self.inst.settings.installation_secret)
        folder = self.store.folder_name(header.study_uid)
        file = self.store.file_name(header.sop_uid)
        created = self.store.put(folder, file, data)
        # Recorded even when the file was there already: a service killed between the
        # write and the record left the file unrecorded, and the resend records it.
        item = _Received(header, arrival, folder, file, len(data))
        if self._queue is not None:
            self._queue.put(item)
        else:
            with self.inst.db.session() as session:
                self._record(session, [item])
        return created

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every instance received so far is recorded in the index (at most
        ``timeout`` seconds: the recorder retries while the index cannot be written);
        whether they are."""
        if self._queue is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        done = self._queue.all_tasks_done
        with done:
            while self._queue.unfinished_tasks:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                done.wait(remaining)
        return True

    def _record_forever(self) -> None:
        assert self._queue is not None
        while True:
            batch = [self._queue.get()]
            # Let a batch gather: one transaction for many instances instead of one each.
            time.sleep(RECORD_WINDOW)
            while len(batch) < RECORD_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            while True:
                try:
                    with self.inst.db.session() as session:
                        self._record(session, batch)
                    self._failed = None
                    break
                except Exception as exc:  # the database is down or locked: keep retrying
                    self._failed = type(exc).__name__
                    LOG.error("quarantine index write failed (%s); retrying", self._failed)
                    time.sleep(1.0)
            for _ in batch:
                self._queue.task_done()

    @staticmethod
    def _record(session: Session, batch: Sequence[_Received]) -> None:
        by_study: dict[str, list[_Received]] = {}
        for item in batch:
            by_study.setdefault(item.header.study_uid, []).append(item)
        # The writes come first, so that a SQLite transaction holds the write lock before
        # it reads (a read lock upgraded later can fail under concurrent senders).
        upsert(
            session,
            QuarantineStudy.__table__,
            [{
                "study_uid": uid, "folder": items[0].folder,
                "calling_ae": items[0].arrival.calling_ae[:16],
                "called_ae": items[0].arrival.called_ae[:16],
                "first_arrival": min(i.arrival.at for i in items),
                "last_arrival": max(i.arrival.at for i in items),
                "study_date": items[0].header.study_date, "modalities": "",
                "study_description": items[0].header.study_description,
                "accession_number": items[0].header.accession_number,
                "patient_key": items[0].header.patient_key,
                "state": StudyState.RECEIVING.value, "note": "",
            } for uid, items in by_study.items()],
            keys=("study_uid",),
            replace=("last_arrival",),
        )
        studies = {
            s.study_uid: s for s in session.scalars(
                select(QuarantineStudy).where(QuarantineStudy.study_uid.in_(list(by_study))))
        }
        rows = []
        for uid, items in by_study.items():
            study = studies[uid]
            if study.state == StudyState.COMPLETE:
                study.state = StudyState.RECEIVING.value  # a late arrival reopens it
            modalities = set(filter(None, study.modalities.split("\\")))
            modalities.update(i.header.modality for i in items if i.header.modality)
            joined = "\\".join(sorted(modalities))[:64]
            if joined != study.modalities:
                study.modalities = joined
            rows.extend({
                "study_id": study.id, "sop_uid": i.header.sop_uid,
                "series_uid": i.header.series_uid, "file": i.file, "size": i.size,
                "received_at": i.arrival.at, "state": InstanceState.RECEIVED.value,
            } for i in items)
        upsert(session, QuarantineInstance.__table__, rows, keys=("study_id", "sop_uid"))

    def recover(self) -> int:
        """Record files in the quarantine that the index does not know; how many.

        A service killed after writing a file and before recording it leaves such a file;
        its arrival is then the file's time, its AE titles unknown.
        """
        with self.inst.db.session() as session:
            known = {(folder, file) for folder, file in session.execute(
                select(QuarantineStudy.folder, QuarantineInstance.file)
                .join(QuarantineInstance, QuarantineInstance.study_id == QuarantineStudy.id))}
        missing: list[_Received] = []
        secret = self.inst.settings.installation_secret
        for folder in self.store.folders():
            for path in sorted((self.store.root / folder).glob("*.dcm")):
                if (folder, path.name) in known:
                    continue
                try:
                    header = read_header(path.read_bytes(), secret)
                except (DicomInputError, OSError):
                    continue
                if self.store.folder_name(header.study_uid) != folder:
                    continue
                at = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
                missing.append(_Received(header, Arrival("", "", at), folder, path.name,
                                         path.stat().st_size))
        for start in range(0, len(missing), RECORD_BATCH):
            with self.inst.db.session() as session:
                self._record(session, missing[start:start + RECORD_BATCH])
        return len(missing)

    # --- completion --------------------------------------------------------------------

    def close_quiet_studies(self, timeout: float, now: dt.datetime | None = None) -> list[int]:
        """Mark studies quiet for ``timeout`` seconds complete; their ids, oldest first."""
        cutoff = (now or utcnow()) - dt.timedelta(seconds=timeout)
        with self.inst.db.session() as session:
            ids = list(session.scalars(
                select(QuarantineStudy.id)
                .where(QuarantineStudy.state == StudyState.RECEIVING,
                       QuarantineStudy.last_arrival < cutoff)
                .order_by(QuarantineStudy.last_arrival)
            ))
            closed = []
            for study_id in ids:
                # Guarded by state and time: an instance that arrived meanwhile keeps it open.
                result = session.execute(
                    update(QuarantineStudy)
                    .where(QuarantineStudy.id == study_id,
                           QuarantineStudy.state == StudyState.RECEIVING,
                           QuarantineStudy.last_arrival < cutoff)
                    .values(state=StudyState.COMPLETE.value)
                )
                if result.rowcount:
                    closed.append(study_id)
        return closed

    def assigned_with_late_arrivals(self, timeout: float,
                                    now: dt.datetime | None = None) -> list[int]:
        """Assigned studies, quiet for ``timeout``, with instances not yet imported."""
        now = now or utcnow()
        cutoff = now - dt.timedelta(seconds=timeout)
        stale = now - dt.timedelta(seconds=ASSIGNER_GRACE)
        with self.inst.db.session() as session:
            return list(session.scalars(
                select(QuarantineStudy.id)
                .where(QuarantineStudy.state == StudyState.ASSIGNED,
                       QuarantineStudy.last_arrival < cutoff,
                       QuarantineStudy.instances.any(and_(
                           QuarantineInstance.state == InstanceState.RECEIVED,
                           # Instances there at the assignment are the assigner's to import;
                           # only if that import died long ago does the gateway take over.
                           or_(QuarantineInstance.received_at > QuarantineStudy.assigned_at,
                               QuarantineStudy.assigned_at < stale))))
                .order_by(QuarantineStudy.last_arrival)
            ))

    def wait_until_complete(self, study_uid: str, timeout: float, poll: float = 0.05) -> str:
        """Block until the study has left RECEIVING (for tests and scripts); its state."""
        deadline = time.monotonic() + timeout
        while True:
            with self.inst.db.session() as session:
                state = session.scalar(select(QuarantineStudy.state)
                                       .where(QuarantineStudy.study_uid == study_uid))
            if state not in (None, StudyState.RECEIVING) or time.monotonic() > deadline:
                return state or ""
            time.sleep(poll)

    # --- listing -----------------------------------------------------------------------

    def entries(self, states: Sequence[str] | None = None,
                project_ids: Collection[int] | None = None) -> list[QuarantineEntry]:
        """The quarantine list, newest arrival first.

        With ``project_ids`` (a web user's projects) only the studies that user may see:
        those of no project yet and those of one of ``project_ids`` — a study assigned to
        another project is that project's, and is not shown.
        """
        return self._entries(states, project_ids)

    def entry(self, study_id: int, project_ids: Collection[int] | None = None
              ) -> QuarantineEntry:
        """Quarantined study ``study_id``; NotFoundError if there is none, or (with
        ``project_ids``) if it is assigned to another project: the same error, word for
        word, so that a number says nothing about other projects' studies."""
        found = self._entries(None, project_ids, study_id)
        if not found:
            raise NotFoundError(f"no study {study_id} in the quarantine")
        return found[0]

    def _entries(self, states: Sequence[str] | None, project_ids: Collection[int] | None,
                 study_id: int | None = None) -> list[QuarantineEntry]:
        with self.inst.db.session() as session:
            counts = (
                select(
                    QuarantineInstance.study_id,
                    func.count(func.distinct(QuarantineInstance.series_uid)).label("series"),
                    func.count().label("images"),
                )
                .group_by(QuarantineInstance.study_id)
                .subquery()
            )
            query = (
                select(QuarantineStudy, counts.c.series, counts.c.images, Project.acronym)
                .outerjoin(counts, counts.c.study_id == QuarantineStudy.id)
                .outerjoin(Project, Project.id == QuarantineStudy.project_id)
                .order_by(QuarantineStudy.last_arrival.desc())
            )
            if states:
                query = query.where(QuarantineStudy.state.in_(list(states)))
            if project_ids is not None:
                query = query.where(_visible(project_ids))
            if study_id is not None:
                query = query.where(QuarantineStudy.id == study_id)
            return [
                QuarantineEntry(
                    study_uid=s.study_uid, state=s.state, study_date=s.study_date,
                    modalities=s.modalities, description=s.study_description,
                    series=series or 0, images=images or 0,
                    accession_number=s.accession_number, calling_ae=s.calling_ae,
                    called_ae=s.called_ae, first_arrival=as_utc(s.first_arrival),
                    last_arrival=as_utc(s.last_arrival), project=acronym,
                    participant=s.participant, event=s.event, assigned_by=s.assigned_by,
                    note=s.note, id=s.id,
                )
                for s, series, images, acronym in session.execute(query)
            ]

    def study_id(self, study_uid: str) -> int:
        with self.inst.db.session() as session:
            found = session.scalar(select(QuarantineStudy.id)
                                   .where(QuarantineStudy.study_uid == study_uid))
        if found is None:
            raise NotFoundError("no study with this StudyInstanceUID in the quarantine "
                                "(see: rpacs quarantine list)")
        return found

    def study_uid(self, study_id: int) -> str:
        """The StudyInstanceUID of quarantined study ``study_id`` (NotFoundError if none)."""
        with self.inst.db.session() as session:
            found = session.scalar(select(QuarantineStudy.study_uid)
                                   .where(QuarantineStudy.id == study_id))
        if found is None:
            raise NotFoundError(f"no study {study_id} in the quarantine")
        return found

    # --- retention ---------------------------------------------------------------------

    def purge(self, now: dt.datetime | None = None, days: float | None = None) -> PurgeSummary:
        """Delete studies whose last instance arrived more than the retention period ago.

        Unassigned (waiting, refused) studies go with their originals; of assigned studies
        only the record and any original the import refused remain to delete (imported
        originals were deleted on import). Folders no row points at (a service killed
        between writing and recording) go too once they are as old.
        """
        now = now or utcnow()
        days = self.inst.settings.quarantine_days if days is None else days
        cutoff = now - dt.timedelta(days=days)
        studies = files = 0
        with self.inst.db.session() as session:
            old = list(session.execute(
                select(QuarantineStudy.id, QuarantineStudy.folder)
                .where(QuarantineStudy.last_arrival < cutoff,
                       QuarantineStudy.state != StudyState.RECEIVING)
            ))
            for study_id, _folder in old:
                session.execute(delete(QuarantineInstance)
                                .where(QuarantineInstance.study_id == study_id))
                session.execute(delete(QuarantineStudy).where(QuarantineStudy.id == study_id))
            known = set(session.scalars(select(QuarantineStudy.folder)))
        # Files after the rows: a purge killed in between leaves folders no row points at,
        # which the next purge deletes as orphans.
        for _study_id, folder in old:
            files += self.store.remove_folder(folder)
            studies += 1
        orphans = 0
        limit = cutoff.timestamp()
        for folder in self.store.folders():
            if folder in known:
                continue
            try:
                if (self.store.root / folder).stat().st_mtime < limit:
                    files += self.store.remove_folder(folder)
                    orphans += 1
            except FileNotFoundError:
                pass
        return PurgeSummary(studies=studies, files=files, orphan_folders=orphans)
