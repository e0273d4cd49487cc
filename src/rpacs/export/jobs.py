"""Export jobs: exports started from the web app, each run by a process of its own.

Why a process per job, started by the web app (``rpacs export-job ID``), rather than a
thread or a resident runner: an export forks a pool of workers and needs every core, which
a web server's threads must not do from inside; a process of its own can crash or be killed
without taking the web server along; and nothing beyond ``rpacs serve`` has to be started
or supervised, whichever server runs the app (uvicorn's workers, the tests' client).

A job's life is in its row (``queued`` → ``running`` → ``done`` | ``failed``, progress
done/total) and in one lock file: the web app takes the lock *before* the process is
started and hands it over (an inherited descriptor), the process holds it until it ends.
So "queued or running, lock free" means the process is gone: :func:`recover_interrupted`
(run when the app starts, and for one job whenever it is looked at) marks such a job
failed — "interrupted; resume" — and :func:`resume_export` starts it again, the engine
continuing from its work folder. Jobs run one at a time (a second lock, the *slot*): the
engine uses every core already; the others wait ``queued``.

Everything a job writes stays in ``exports/<id>/`` under RPACS_HOME: the package, its risk
report and coupling list beside it, and the one zip a download sends.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from ..audit import record_event
from ..db import ExportJob, ExportRun, Project
from ..errors import ConflictError, NotFoundError, RpacsError
from ..installation import Installation
from ..settings import Settings
from .content import ExportJobView
from .enum import JobState
from .package import write_zip
from .service import package_path, plan_export, run_export
from .spec import ExportSpec

LOG = logging.getLogger("rpacs.export.jobs")
#: The error of a job whose process ended without finishing it (restart, crash, kill).
INTERRUPTED = "interrupted; resume"
_ACTIVE = (JobState.QUEUED.value, JobState.RUNNING.value)
#: Least seconds between two progress writes (the last one is always written).
_PROGRESS_EVERY = 0.5


def job_folder(settings: Settings, job_id: int) -> Path:
    return settings.exports_dir / str(job_id)


def _locks(settings: Settings) -> Path:
    folder = settings.exports_dir / ".locks"
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.exports_dir, 0o700)
    return folder


def _lock_path(settings: Settings, token: str) -> Path:
    return _locks(settings) / f"{token}.lock"


def _take(path: Path) -> int:
    """Open and lock ``path`` (created if missing); the descriptor holds the lock."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise
    return fd


def _alive(settings: Settings, token: str) -> bool:
    """Whether the process of a job still holds its lock."""
    if not token:
        return False
    try:
        fd = os.open(_lock_path(settings, token), os.O_RDWR)  # never created here
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite hands back naive UTC
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.isoformat(timespec="seconds")


def _view(job: ExportJob, acronym: str) -> ExportJobView:
    return ExportJobView(
        id=job.id, project=acronym, spec_name=job.spec_name, spec_sha256=job.spec_sha256,
        state=job.state, done=job.done, total=job.total, started_by=job.started_by,
        created_at=_iso(job.created_at) or "", finished_at=_iso(job.finished_at),
        error=job.error, n_files=job.n_files,
        download_name=f"{acronym}-{job.spec_name}-{job.id}.zip" if job.download else "",
        resumable=job.state == JobState.FAILED, resumed_by=job.resumed_by)


# --- starting --------------------------------------------------------------------------


def start_export(inst: Installation, project: Project, spec: ExportSpec,
                 actor: str) -> ExportJobView:
    """Record a job for ``spec`` and start its process; the job is ``queued`` at first."""
    token = secrets.token_hex(16)
    path = _lock_path(inst.settings, token)
    lock = _take(path)
    try:
        with _removed_on_error(path), inst.db.session() as session:
            job = ExportJob(project_id=project.id, spec_name=spec.name,
                            spec_sha256=spec.sha256, spec_text=spec.text,
                            state=JobState.QUEUED.value, done=0, total=0,
                            started_by=actor[:100], package="", download="", n_files=0,
                            error="", lock_token=token)
            session.add(job)
            session.flush()
            job_id = job.id
            record_event(session, actor[:100], "export.start", project.id, 0, job=job_id,
                         spec=spec.name, spec_sha256=spec.sha256)
        _launch(inst, job_id, lock, path)
    finally:
        os.close(lock)  # the process holds its own copy of the lock now
    return export_job(inst, job_id)


def resume_export(inst: Installation, job_id: int, actor: str) -> ExportJobView:
    """Start a failed job again; the engine continues from what its work folder holds.

    The run is ``actor``'s from now on (``resumed_by``): its ``export`` event names them,
    while the job keeps who started it.
    """
    token = secrets.token_hex(16)
    path = _lock_path(inst.settings, token)
    # Taken before the row names it: a queued job whose lock is free counts as interrupted.
    lock = _take(path)
    try:
        with _removed_on_error(path), inst.db.session() as session:
            job = session.get(ExportJob, job_id)
            if job is None:
                raise NotFoundError(f"no export {job_id}")
            changed = session.execute(
                update(ExportJob).where(ExportJob.id == job_id,
                                        ExportJob.state == JobState.FAILED.value)
                .values(state=JobState.QUEUED.value, error="", finished_at=None,
                        lock_token=token, resumed_by=actor[:100])).rowcount
            if not changed:
                raise ConflictError(f"export {job_id} is {job.state}: only a failed export "
                                    "can be resumed")
            record_event(session, actor[:100], "export.resume", job.project_id, 0,
                         job=job_id, spec=job.spec_name, spec_sha256=job.spec_sha256)
        _launch(inst, job_id, lock, path)
    finally:
        os.close(lock)
    return export_job(inst, job_id)


@contextmanager
def _removed_on_error(lock: Path) -> Iterator[None]:
    """Remove the new job lock file ``lock`` if the block raises (a refused resume, a
    failed insert): no process will hold it, and every refusal would leave one more file
    in ``.locks``. Not around the launch: a process that started holds the file."""
    try:
        yield
    except BaseException:
        lock.unlink(missing_ok=True)
        raise


def _launch(inst: Installation, job_id: int, lock: int, lock_path: Path) -> None:
    """Start ``rpacs export-job JOB_ID`` holding ``lock`` (the file ``lock_path``, removed
    if no process starts); settings go through its stdin (the database URL may hold a
    password: never on a command line)."""
    settings = inst.settings
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    log_fd = os.open(settings.log_dir / f"export-{job_id}.log",
                     os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "rpacs", "export-job", str(job_id)],
            stdin=subprocess.PIPE, stdout=log_fd, stderr=subprocess.STDOUT,
            pass_fds=(lock,), start_new_session=True, close_fds=True)
    except OSError as exc:
        lock_path.unlink(missing_ok=True)
        with inst.db.session() as session:
            session.execute(update(ExportJob).where(ExportJob.id == job_id).values(
                state=JobState.FAILED.value, finished_at=_now(),
                error=f"could not start the export process ({exc.strerror})"))
        raise RpacsError("could not start the export process; see the server log") from exc
    finally:
        os.close(log_fd)
    assert process.stdin is not None
    process.stdin.write(settings.to_json().encode())
    process.stdin.close()
    # Reaped in the background: the web server never waits for an export.
    threading.Thread(target=process.wait, name=f"export-{job_id}", daemon=True).start()


# --- running (in the job's own process) -------------------------------------------------


@contextmanager
def _slot(settings: Settings) -> Iterator[None]:
    """One export at a time: wait (``queued``) until the one before has finished."""
    fd = os.open(_locks(settings) / "slot", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def run_job(inst: Installation, job_id: int) -> JobState:
    """Run a queued job to its end (what ``rpacs export-job`` does); its final state.

    A message the user can act on (every RpacsError: a spec, a finding, a conflict) is
    kept as the job's error; anything else is a bug, logged with its traceback in the
    job's log file and shown as an internal error.
    """
    settings = inst.settings
    with inst.db.session() as session:
        job = session.get(ExportJob, job_id)
        if job is None or job.state != JobState.QUEUED:
            return JobState(job.state) if job is not None else JobState.FAILED
        project = session.get(Project, job.project_id)
        assert project is not None
        # A resumed job's run is its resumer's: the export's audit event names them.
        acronym, text, actor, token = (project.acronym, job.spec_text,
                                       job.resumed_by or job.started_by, job.lock_token)
    out = job_folder(settings, job_id)
    state, values = JobState.FAILED, {}
    try:
        with _slot(settings):
            with inst.db.session() as session:
                session.execute(update(ExportJob).where(ExportJob.id == job_id)
                                .values(state=JobState.RUNNING.value))
            spec = ExportSpec.from_yaml(text)
            out.mkdir(parents=True, exist_ok=True)
            os.chmod(out, 0o700)
            package = package_path(out, spec)
            files = _finished_files(inst, package)
            values = {}
            if files is None:
                result = run_export(inst, acronym, spec, out, actor=actor,
                                    progress=_progress(inst, job_id))
                files = result.files
                values = {"done": result.instances, "total": result.instances}
            # else: an earlier run of this job completed the package and was stopped
            # before it could say so: the package stands, only the download is made.
            download = _download_zip(out, package)
            state = JobState.DONE
            values.update({"package": package.relative_to(out).as_posix(),
                           "download": download.relative_to(out).as_posix(),
                           "n_files": files, "error": ""})
    except RpacsError as exc:
        values = {"error": str(exc)[:2000]}
    except BaseException:
        LOG.exception("export job %d failed", job_id)
        values = {"error": f"the export stopped on an internal error (log: "
                           f"logs/export-{job_id}.log)"}
        raise
    finally:
        with inst.db.session() as session:
            session.execute(update(ExportJob).where(ExportJob.id == job_id)
                            .values(state=state.value, finished_at=_now(), **values))
        _lock_path(settings, token).unlink(missing_ok=True)
    return state


def _finished_files(inst: Installation, package: Path) -> int | None:
    """The file count of the completed export whose package is at ``package``, if any."""
    if not package.exists():
        return None
    with inst.db.session() as session:
        return session.scalar(select(ExportRun.n_files).where(
            ExportRun.output == str(package)).order_by(ExportRun.id.desc()).limit(1))


def _progress(inst: Installation, job_id: int) -> Callable[[int, int], None]:
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < _PROGRESS_EVERY:
            return
        last[0] = now
        with inst.db.session() as session:
            session.execute(update(ExportJob).where(ExportJob.id == job_id)
                            .values(done=done, total=total))

    return report


def _download_zip(out: Path, package: Path) -> Path:
    """The one zip a download sends: the package itself when it is a zip, else a zip of
    the package folder (its zips stored as they are, not compressed again)."""
    if package.is_file():
        return package
    target = out / f"{package.name}.download.zip"
    if not target.exists():
        entries = {f"{package.name}/{p.relative_to(package).as_posix()}": p
                   for p in sorted(package.rglob("*")) if p.is_file()}
        write_zip(target, entries)
    return target


# --- looking -----------------------------------------------------------------------------


def dry_run(inst: Installation, project: Project, spec: ExportSpec,
            series_shown: int = 5) -> dict[str, Any]:
    """What an export of ``spec`` would write, for the Export page and the API: counts,
    the first paths, the tags that change in one instance of the first series, the risk
    report. Export IDs only (research ID → export ID is the coupling list)."""
    plan, risk = plan_export(inst, project.acronym, spec, inst.settings.exports_dir / "plan")
    changes = [{"series": f"{s.participant} {s.event} {s.modality} series "
                          f"{s.series_number} ({s.series_description})",
                "changes": [asdict(c) for c in plan.changes.get(s.key, [])]}
               for s in plan.series[:series_shown]]
    return {
        "spec": spec.name, "spec_sha256": spec.sha256, "description": spec.description,
        "participants": len(plan.participants), "series": len(plan.series),
        "instances": plan.n_instances, "fresh_every_run": plan.fresh_every_run,
        "counts": [dict(zip(("participant", "event", "modality", "series", "instances"),
                            row, strict=True)) for row in plan.counts()],
        "first_paths": plan.first_paths(), "file_set": plan.file_set, "changes": changes,
        "more_series": max(0, len(plan.series) - series_shown),
        "risk": risk.as_dict(), "risk_text": risk.render(),
    }


def recover_interrupted(inst: Installation, job_id: int | None = None) -> int:
    """Mark queued or running jobs whose process is gone as failed (resumable); how many.

    The update names the state it found, so a job that finished meanwhile stays done.
    """
    query = select(ExportJob.id, ExportJob.lock_token).where(ExportJob.state.in_(_ACTIVE))
    if job_id is not None:
        query = query.where(ExportJob.id == job_id)
    with inst.db.session() as session:
        active = list(session.execute(query))
    gone = [(jid, token) for jid, token in active if not _alive(inst.settings, token)]
    count = 0
    for jid, token in gone:
        with inst.db.session() as session:
            count += session.execute(
                update(ExportJob).where(ExportJob.id == jid, ExportJob.lock_token == token,
                                        ExportJob.state.in_(_ACTIVE))
                .values(state=JobState.FAILED.value, error=INTERRUPTED,
                        finished_at=_now())).rowcount
        if token:
            _lock_path(inst.settings, token).unlink(missing_ok=True)
    return count


def export_job(inst: Installation, job_id: int) -> ExportJobView:
    """One job (NotFoundError when there is none); an interrupted one shows as failed."""
    recover_interrupted(inst, job_id)
    with inst.db.session() as session:
        row = session.execute(select(ExportJob, Project.acronym)
                              .join(Project, Project.id == ExportJob.project_id)
                              .where(ExportJob.id == job_id)).first()
    if row is None:
        raise NotFoundError(f"no export {job_id}")
    return _view(*row)


def job_project(inst: Installation, job_id: int) -> str:
    """The acronym of a job's project, to authorize a request about the job."""
    with inst.db.session() as session:
        acronym = session.scalar(select(Project.acronym)
                                 .join(ExportJob, ExportJob.project_id == Project.id)
                                 .where(ExportJob.id == job_id))
    if acronym is None:
        raise NotFoundError(f"no export {job_id}")
    return acronym


def project_exports(inst: Installation, project: Project, limit: int = 100
                    ) -> list[ExportJobView]:
    """The project's jobs, newest first."""
    with inst.db.session() as session:
        jobs = list(session.scalars(select(ExportJob).where(
            ExportJob.project_id == project.id).order_by(ExportJob.id.desc()).limit(limit)))
    return [_view(job, project.acronym) for job in jobs]


def export_download(inst: Installation, job_id: int, actor: str) -> Path:
    """The zip of a done job, its download audited (ConflictError while not done)."""
    with inst.db.session() as session:
        job = session.get(ExportJob, job_id)
        if job is None:
            raise NotFoundError(f"no export {job_id}")
        if job.state != JobState.DONE or not job.download:
            raise ConflictError(f"export {job_id} is {job.state}: there is nothing to "
                                "download yet")
        path = job_folder(inst.settings, job_id) / job.download
        if not path.is_file():
            raise NotFoundError(f"the package of export {job_id} is no longer on disk")
        record_event(session, actor[:100], "export.download", job.project_id, job.n_files,
                     job=job_id, spec=job.spec_name, spec_sha256=job.spec_sha256,
                     bytes=path.stat().st_size)
    return path


def export_risk(inst: Installation, job_id: int) -> dict[str, object] | None:
    """The risk report written beside a done job's package (None when there is none)."""
    with inst.db.session() as session:
        job = session.get(ExportJob, job_id)
    if job is None or job.state != JobState.DONE:
        return None
    path = job_folder(inst.settings, job_id) / f"{job.spec_name}.risk-report.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


__all__ = [
    "INTERRUPTED",
    "dry_run",
    "export_download",
    "export_job",
    "export_risk",
    "job_folder",
    "job_project",
    "project_exports",
    "recover_interrupted",
    "resume_export",
    "run_job",
    "start_export",
]
