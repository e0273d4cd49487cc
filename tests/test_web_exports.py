"""Export jobs through the API: start, follow, download, stored specs, and a job whose
process dies (failed, resumable after a restart)."""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import signal
import threading
import zipfile
from pathlib import Path

import pytest

from rpacs.audit import AuditQuery, audit_events
from rpacs.db import ExportJob
from rpacs.errors import ConflictError, NotFoundError, RpacsError
from rpacs.export import jobs, resume_export, save_spec
from rpacs.export.jobs import job_folder
from rpacs.projects import get_project

from .dicom_factory import BIRTH_DATE, PATIENT_ID, PATIENT_NAME, ROOT
from .gateway_support import wait_for
from .web_world import World, done_export, failed_export, wait_for_export

#: A stored spec that selects nothing: a job of it fails at once.
NOTHING = "name: nothing\nselect: {participants: [TP-9999]}\n"
#: A spec that exports ALPHA's baseline with new IDs and a coupling list, as one zip.
COUPLED = ("name: coupled\nselect: {events: [baseline]}\n"
           "identity: {participant: random, pattern: 'EXP{n:04d}', coupling_list: true}\n"
           "dates: shift\npackage: zip\n")


#: Planted values of the test data that must never leave in a log, a job row or the audit.
PHI = [PATIENT_NAME.split("^")[0], "Magnus", PATIENT_ID, BIRTH_DATE, ROOT]


def _bearer(world: World, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[name]}"}


def _job_processes(world: World, job_id: int) -> list[int]:
    """PIDs of the processes holding the lock of export JOB_ID (its process, and any
    worker it forked): found by the lock file they hold open, which no other test's
    job shares (job numbers do repeat across the homes of parallel test workers)."""
    with world.inst.db.session() as session:
        token = session.get(ExportJob, job_id).lock_token
    lock = str(world.settings.exports_dir / ".locks" / f"{token}.lock")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) == lock for fd in (entry / "fd").iterdir()):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_an_export_started_followed_and_downloaded_by_api(web_world: World):
    client = web_world.client()
    dana = _bearer(web_world, "dana")
    started = client.post("/api/projects/ALPHA/exports", json={"spec": "research-package"},
                          headers=dana)
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    assert started.json()["state"] in ("queued", "running")
    wait_for_export(web_world, job_id)
    state = client.get(f"/api/exports/{job_id}", headers=dana).json()
    assert state["state"] == "done", state
    assert state["done"] == state["total"] == 8 and state["percent"] == 100
    assert state["started_by"] == "dana"
    answer = client.get(f"/api/exports/{job_id}/download", headers=dana)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/zip"
    assert answer.headers["content-disposition"] == \
        f'attachment; filename="ALPHA-research-package-{job_id}.zip"'
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    # A zip per participant: the zips come as one zip, stored as they are.
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        names = archive.namelist()
        manifest = archive.read("research-package/manifest.csv").decode()
        inner = zipfile.ZipFile(io.BytesIO(archive.read("research-package/TP-0001.zip")))
    assert {"research-package/TP-0001.zip", "research-package/TP-0002.zip"} <= set(names)
    assert len([n for n in inner.namelist() if n.endswith(".dcm")]) == 6
    assert len(manifest.strip().splitlines()) == 9  # header + one row per file
    # The risk report and coupling list stay beside the package, not in the download.
    assert not any("risk-report" in n or "coupling" in n for n in names)
    listed = client.get("/api/projects/ALPHA/exports", headers=dana).json()
    assert job_id in [j["id"] for j in listed]
    actions = [(e["actor"], e["action"]) for e in audit_events(
        web_world.inst, AuditQuery(action="export"))
        if e["details"].get("job") == job_id or e["action"] == "export"]
    assert ("dana", "export.start") in actions
    assert ("dana", "export") in actions
    assert ("dana", "export.download") in actions


def test_who_may_follow_an_export(web_world: World):
    client = web_world.client()
    job = client.post("/api/projects/ALPHA/exports", json={"spec": "research-package"},
                      headers=_bearer(web_world, "olivia")).json()["id"]
    mike, nora = _bearer(web_world, "mike"), _bearer(web_world, "nora")
    assert client.post("/api/projects/ALPHA/exports", json={"spec": "research-package"},
                       headers=mike).status_code == 403
    assert client.get(f"/api/exports/{job}", headers=mike).status_code == 403
    assert client.get(f"/api/exports/{job}/download", headers=mike).status_code == 403
    # Not in the project: the export does not exist, as one that never did.
    assert client.get(f"/api/exports/{job}", headers=nora).json()["detail"] == \
        f"no export {job}"
    assert client.get("/api/exports/999999", headers=nora).json()["detail"] == \
        "no export 999999"
    assert client.get(f"/api/exports/{job}/download", headers=nora).status_code == 404
    wait_for_export(web_world, job)


@pytest.mark.parametrize("outsider", ["nora", "bob"])  # BRAVO member / data-manager
def test_export_of_another_project_does_not_exist_for_an_outsider(web_world: World, outsider):
    job = done_export(web_world, "ALPHA")
    failed = failed_export(web_world, NOTHING)
    client = web_world.client()
    who = _bearer(web_world, outsider)
    missing = 10_000_000
    for path in (f"/api/exports/{job}", f"/api/exports/{job}/download"):
        answer = client.get(path, headers=who)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["detail"] == f"no export {job}"
    answer = client.post(f"/api/exports/{failed}/resume", headers=who)
    assert answer.status_code == 404 and answer.json()["detail"] == f"no export {failed}"
    # Word for word what a job that never existed answers.
    assert client.get(f"/api/exports/{missing}", headers=who).json()["detail"] == \
        f"no export {missing}"
    # The pages, with the session cookie and a valid CSRF token.
    page, csrf = web_world.login(outsider)
    assert page.get(f"/exports/{job}").status_code == 404
    assert page.get(f"/api/exports/{job}/download").status_code == 404
    assert page.post(f"/exports/{failed}/resume", data={"csrf_token": csrf}).status_code == 404
    with web_world.inst.db.session() as session:
        assert session.get(ExportJob, failed).state == "failed"  # not resumed
    assert not [e for e in audit_events(web_world.inst, AuditQuery(action="export.download"))
                if e["details"].get("job") == job]


def test_alpha_data_manager_cannot_reach_a_bravo_export(web_world: World):
    job = done_export(web_world, "BRAVO")
    failed = failed_export(web_world, NOTHING, acronym="BRAVO", started_by="bob")
    client = web_world.client()
    dana = _bearer(web_world, "dana")
    assert client.get(f"/api/exports/{job}", headers=dana).status_code == 404
    assert client.get(f"/api/exports/{job}/download", headers=dana).status_code == 404
    assert client.post(f"/api/exports/{failed}/resume", headers=dana).status_code == 404
    # And BRAVO's own data-manager may (the 404 above is about the project, not the job).
    bob = _bearer(web_world, "bob")
    assert client.get(f"/api/exports/{job}/download", headers=bob).status_code == 200


def test_a_bad_spec_name_and_a_download_too_early(web_world: World):
    client = web_world.client()
    dana = _bearer(web_world, "dana")
    answer = client.post("/api/projects/ALPHA/exports", json={"spec": "no-such-spec"},
                         headers=dana)
    assert answer.status_code == 422
    assert "'no-such-spec' is neither a built-in spec" in answer.json()["detail"]
    assert client.post("/api/projects/ALPHA/exports", json={}, headers=dana).status_code == 422


def test_stored_specs_are_validated_and_used(web_world: World):
    client = web_world.client()
    dana = {**_bearer(web_world, "dana"), "Content-Type": "application/yaml"}
    bad = client.post("/api/projects/ALPHA/export-specs", headers=dana,
                      content=b"name: t1-only\nidentity: {participant: sometimes}\n"
                              b"package: folder\n")
    assert bad.status_code == 422
    problems = bad.json()["problems"]
    assert any(p.startswith("identity.participant:") for p in problems), problems
    assert any(p.startswith("package:") for p in problems), problems
    taken = client.post("/api/projects/ALPHA/export-specs", headers=dana,
                        content=b"name: nifti\n")
    assert taken.status_code == 422 and "built-in" in taken.json()["detail"]
    text = ("name: t1-only\nselect: {events: [baseline]}\n"
            "identity: {participant: random, pattern: 'T1-{n:03d}'}\npackage: zip\n")
    saved = client.post("/api/projects/ALPHA/export-specs", headers=dana,
                        content=text.encode())
    assert saved.status_code == 200, saved.text
    assert saved.json()["updated_by"] == "dana"
    specs = client.get("/api/projects/ALPHA/export-specs", headers=dana).json()
    assert "research-package" in specs["builtin"]
    assert [s["name"] for s in specs["stored"] if s["name"] == "t1-only"] == ["t1-only"]
    plan = client.get("/api/projects/ALPHA/exports/plan", params={"spec": "t1-only"},
                      headers=dana).json()
    assert plan["participants"] == 1 and plan["instances"] == 6
    assert all(row["participant"].startswith("T1-") for row in plan["counts"])
    bearer = _bearer(web_world, "dana")
    job = client.post("/api/projects/ALPHA/exports", json={"spec": "t1-only"},
                      headers=bearer).json()["id"]
    assert wait_for_export(web_world, job).state == "done"
    with zipfile.ZipFile(io.BytesIO(client.get(f"/api/exports/{job}/download",
                                               headers=bearer).content)) as archive:
        # A zip package is sent as it is.
        assert "manifest.csv" in archive.namelist()
    coupling = web_world.settings.exports_dir / str(job) / "t1-only.coupling-list.csv"
    assert coupling.is_file() and oct(coupling.stat().st_mode & 0o777) == "0o600"


def test_the_spec_api_has_a_size_limit(web_world: World):
    """The API reads at most 4 bytes per character of the page's limit (64 KiB): the body
    is refused by its length before it is read."""
    client = web_world.client()
    dana = {**_bearer(web_world, "dana"), "Content-Type": "application/yaml"}
    huge = client.post("/api/projects/ALPHA/export-specs", headers=dana,
                       content=b"name: big\n#" + b"x" * (256 * 1024))
    assert huge.status_code == 413
    assert huge.json()["detail"] == "the spec is larger than 256 KiB, the limit of this server"
    long = client.post("/api/projects/ALPHA/export-specs", headers=dana,
                       content=b"name: big\n#" + b"x" * (64 * 1024))
    assert long.status_code == 422 and long.json()["detail"] == "spec: longer than 64 KiB"


def test_a_job_whose_process_dies_is_failed_and_resumable(web_world: World):
    locks = web_world.settings.exports_dir / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    # Holding the one export slot keeps the job's process alive and waiting (queued).
    slot = os.open(locks / "slot", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(slot, fcntl.LOCK_EX)
        client = web_world.client()
        dana = _bearer(web_world, "dana")
        job = client.post("/api/projects/ALPHA/exports", json={"spec": "research-package"},
                          headers=dana).json()["id"]
        processes = wait_for(lambda: _job_processes(web_world, job), timeout=60)
        assert processes
        # A server restart while the process lives: the job stays queued.
        restarted = web_world.client()
        assert restarted.get(f"/api/exports/{job}", headers=dana).json()["state"] == "queued"
        for pid in processes:
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not _job_processes(web_world, job), timeout=30)
        restarted = web_world.client()  # the start-up sweep marks it
        state = restarted.get(f"/api/exports/{job}", headers=dana).json()
        assert state["state"] == "failed" and state["error"] == "interrupted; resume"
        assert state["resumable"] is True
        assert restarted.get(f"/api/exports/{job}/download",
                             headers=dana).status_code == 409
        assert restarted.post(f"/api/exports/{job}/resume", headers=dana).status_code == 202
    finally:
        os.close(slot)
    assert wait_for_export(web_world, job).state == "done"
    assert client.post(f"/api/exports/{job}/resume",
                       headers=_bearer(web_world, "dana")).status_code == 409
    assert client.get(f"/api/exports/{job}/download",
                      headers=_bearer(web_world, "dana")).status_code == 200
    resumed = [e for e in audit_events(web_world.inst, AuditQuery(action="export.resume"))
               if e["details"]["job"] == job]
    assert [e["actor"] for e in resumed] == ["dana"]


def test_a_job_stopped_after_its_package_was_complete_resumes_to_done(web_world: World):
    """Killed between the package's rename and the job's last write: resuming finds the
    package complete (its export recorded) and only makes the download."""
    client = web_world.client()
    dana = _bearer(web_world, "dana")
    job = client.post("/api/projects/ALPHA/exports", json={"spec": "anonymized-package"},
                      headers=dana).json()["id"]
    done = wait_for_export(web_world, job)
    assert done.state == "done"
    folder = web_world.settings.exports_dir / str(job)
    for leftover in folder.glob("*.download.zip"):
        leftover.unlink()
    with web_world.inst.db.session() as session:
        row = session.get(ExportJob, job)
        row.state, row.download, row.error = "failed", "", "interrupted; resume"
    assert client.post(f"/api/exports/{job}/resume", headers=dana).status_code == 202
    again = wait_for_export(web_world, job)
    assert again.state == "done", again.error
    assert again.n_files == done.n_files
    answer = client.get(f"/api/exports/{job}/download", headers=dana)
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        assert "anonymized-package/manifest.csv" in archive.namelist()


def test_a_refused_resume_leaves_no_lock_file(web_world: World):
    """A resume takes its job's lock before the row names it; refused (409, 404), it
    removes the file again: repeated refusals must not fill exports/.locks."""
    job = failed_export(web_world, NOTHING)
    with web_world.inst.db.session() as session:
        session.get(ExportJob, job).state = "done"
    locks = web_world.settings.exports_dir / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    before = set(locks.iterdir())
    client = web_world.client()
    for _ in range(3):
        assert client.post(f"/api/exports/{job}/resume",
                           headers=_bearer(web_world, "dana")).status_code == 409
    with pytest.raises(NotFoundError):
        resume_export(web_world.inst, 10_000_000, "dana")
    assert set(locks.iterdir()) == before


def test_the_export_event_of_a_resumed_job_names_who_resumed_it(web_world: World):
    job = failed_export(web_world, COUPLED.replace("coupled", "resumed-by"))  # dana's
    client = web_world.client()
    answer = client.post(f"/api/exports/{job}/resume", headers=_bearer(web_world, "olivia"))
    assert answer.status_code == 202
    assert wait_for_export(web_world, job).state == "done"
    run = [e for e in audit_events(web_world.inst, AuditQuery(action="export"))
           if e["action"] == "export" and e["details"].get("spec") == "resumed-by"]
    assert [e["actor"] for e in run] == ["olivia"]
    # Who started it stays on record, beside who resumed it.
    shown = client.get(f"/api/exports/{job}", headers=_bearer(web_world, "dana")).json()
    assert (shown["started_by"], shown["resumed_by"]) == ("dana", "olivia")
    page, _ = web_world.login("dana")
    row = next(r for r in page.get("/projects/ALPHA/exports").text.split("<tr>")
               if f"#{job}<" in r)
    assert "<td>dana <span class=\"hint\">(resumed by olivia)</span></td>" in row


def test_the_migration_adds_resumed_by_to_existing_jobs(tmp_path: Path):
    """An index at revision 0005 with a job in it: migrated, the job was resumed by no one,
    and the table is what the model describes."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from sqlalchemy import text

    from rpacs.db import Base, Database
    from rpacs.db.engine import _MIGRATIONS

    db = Database(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection_engine"] = db.engine
    command.upgrade(cfg, "0005")
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("PRAGMA foreign_keys=OFF"))  # a job without its project
        connection.execute(text(
            "INSERT INTO export_jobs (project_id, spec_name, spec_sha256, spec_text, state, "
            "done, total, started_by, package, download, n_files, error, lock_token) "
            "VALUES (1, 's', 'x', 'name: s', 'done', 0, 0, 'dana', '', '', 0, '', '')"))
    db.migrate()
    with db.session() as session:
        assert session.get(ExportJob, 1).resumed_by == ""
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in differences if "export_jobs" in repr(d)] == []
    db.dispose()


def test_the_export_page_says_saved_only_for_a_stored_spec(web_world: World):
    """The message comes from the session, once, on the page the save redirects to: a link
    with ?saved=... makes the page say nothing."""
    page, csrf = web_world.login("dana")
    forged = page.get("/projects/ALPHA/exports", params={"saved": "X-ignore-the-risk-report"})
    assert forged.status_code == 200 and "X-ignore-the-risk-report" not in forged.text
    done = page.post("/projects/ALPHA/export-specs", data={
        "csrf_token": csrf, "text": "name: page-saved\nselect: {events: [baseline]}\n"})
    assert done.status_code == 303
    assert done.headers["location"] == "/projects/ALPHA/exports#specs"
    assert "Saved spec page-saved." in page.get("/projects/ALPHA/exports").text
    assert "Saved spec page-saved." not in page.get("/projects/ALPHA/exports").text
    # Left for another page (the Assign page's), it is not shown here.
    page.post("/projects/ALPHA/export-specs", data={
        "csrf_token": csrf, "text": "name: page-saved\nselect: {events: [followup]}\n"})
    assert "Saved spec page-saved." not in page.get("/assign").text
    assert "Saved spec page-saved." in page.get("/projects/ALPHA/exports").text


def test_an_export_job_leaves_no_phi_in_its_log_or_its_row(web_world: World):
    client = web_world.client()
    dana = _bearer(web_world, "dana")
    saved = client.post("/api/projects/ALPHA/export-specs", content=COUPLED.encode(),
                        headers={**dana, "Content-Type": "application/yaml"})
    assert saved.status_code == 200, saved.text
    job = client.post("/api/projects/ALPHA/exports", json={"spec": "coupled"},
                      headers=dana).json()["id"]
    view = wait_for_export(web_world, job)
    assert view.state == "done", view.error
    log = (web_world.settings.log_dir / f"export-{job}.log").read_text()
    row = json.dumps(client.get(f"/api/exports/{job}", headers=dana).json())
    for value in PHI:
        assert value not in log and value not in row
    assert oct((web_world.settings.log_dir / f"export-{job}.log").stat().st_mode & 0o777) == \
        "0o600"
    # The coupling list: beside the package, owner-only, never in the download.
    folder = job_folder(web_world.settings, job)
    coupling = folder / "coupled.coupling-list.csv"
    assert oct(coupling.stat().st_mode & 0o777) == "0o600"
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert oct(web_world.settings.exports_dir.stat().st_mode & 0o777) == "0o700"
    download = client.get(f"/api/exports/{job}/download", headers=dana)
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        assert not [n for n in archive.namelist() if "coupling" in n]
        assert not any(coupling.read_bytes() in archive.read(n) for n in archive.namelist())


def _hold_slot(world: World) -> int:
    """Hold the one export slot: a job started meanwhile stays queued."""
    locks = world.settings.exports_dir / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    slot = os.open(locks / "slot", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(slot, fcntl.LOCK_EX)
    return slot


def test_a_queued_job_runs_the_spec_it_was_started_with(web_world: World):
    project = get_project(web_world.inst, "ALPHA")
    save_spec(web_world.inst, project, COUPLED.replace("baseline", "followup"), "dana")
    client = web_world.client()
    dana = _bearer(web_world, "dana")
    slot = _hold_slot(web_world)
    try:
        job = client.post("/api/projects/ALPHA/exports", json={"spec": "coupled"},
                          headers=dana).json()
        # Queued behind the slot: the stored spec changes; a resume is refused.
        save_spec(web_world.inst, project, COUPLED, "dana")
        assert client.post(f"/api/exports/{job['id']}/resume",
                           headers=dana).status_code == 409
    finally:
        os.close(slot)
    done = wait_for_export(web_world, job["id"])
    assert done.state == "done", done.error
    assert done.spec_sha256 == job["spec_sha256"]
    assert done.n_files > 0


def test_two_resumes_at_once_start_one_process(web_world: World):
    job = failed_export(web_world, NOTHING)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def resume() -> None:
        barrier.wait()
        try:
            resume_export(web_world.inst, job, "dana")
            outcomes.append("started")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=resume) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict", "started"]
    assert wait_for_export(web_world, job).state == "failed"  # NOTHING selects nothing
    resumed = [e for e in audit_events(web_world.inst, AuditQuery(action="export.resume"))
               if e["details"]["job"] == job]
    assert len(resumed) == 1


def test_a_job_whose_spec_text_became_invalid_fails_with_a_message(web_world: World):
    job = failed_export(web_world, NOTHING)
    with web_world.inst.db.session() as session:
        session.get(ExportJob, job).spec_text = "name: [broken\n"
    assert web_world.client().post(f"/api/exports/{job}/resume",
                                   headers=_bearer(web_world, "dana")).status_code == 202
    done = wait_for_export(web_world, job)
    assert done.state == "failed" and done.error.startswith("spec is not valid YAML")
    assert done.resumable


def test_an_export_process_that_cannot_start_leaves_a_failed_job_and_no_lock_file(
        web_world: World, monkeypatch: pytest.MonkeyPatch):
    """No process (the machine out of processes, say): the job is failed with the reason,
    resumable later, and its lock file goes, as nobody will ever hold it."""
    job = failed_export(web_world, NOTHING.replace("nothing", "no-process"))
    locks = web_world.settings.exports_dir / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    before = set(locks.iterdir())

    def no_process(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))

    monkeypatch.setattr(jobs.subprocess, "Popen", no_process)
    with pytest.raises(RpacsError, match="could not start the export process"):
        resume_export(web_world.inst, job, "dana")
    assert set(locks.iterdir()) == before
    with web_world.inst.db.session() as session:
        row = session.get(ExportJob, job)
        assert row.state == "failed" and "could not start" in row.error
