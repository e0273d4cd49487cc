"""Security review of the web exports, the Assign page/API and their services (review branch).

Each test is a reproducer. Tests marked ``xfail(strict=True)`` reproduce a FINDING: they
fail today and will XPASS (and so fail the run) once the finding is fixed — then drop the
mark. Unmarked tests check behaviour the review found sound and guard it.

World: ALPHA (data; olivia owner, dana data-manager, mike member) and BRAVO (nora member,
plus ``bob``, a BRAVO data-manager added here). ``root`` is an admin.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import threading
import zipfile

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from rpacs.accounts import add_member, add_user, create_token
from rpacs.audit import AuditQuery, audit_events
from rpacs.db import AuditEvent, ExportJob, Project
from rpacs.errors import ConflictError, InvalidInputError
from rpacs.export import ExportSpec, resume_export, save_spec
from rpacs.export.jobs import job_folder
from rpacs.export.layout import render
from rpacs.export.spec import builtin_spec
from rpacs.projects import get_project
from rpacs.web import api, create_app, pages

from .dicom_factory import ACCESSION, BIRTH_DATE, PATIENT_ID, PATIENT_NAME, ROOT
from .web_world import PASSWORD, World, quarantined_study, wait_for_export

HEADER = "accession_number,project,participant,event\n"
#: A stored spec that selects nothing: a job of it fails at once.
NOTHING = "name: nothing\nselect: {participants: [TP-9999]}\n"
#: A spec that exports ALPHA's baseline with new IDs and a coupling list, as one zip.
COUPLED = ("name: coupled\nselect: {events: [baseline]}\n"
           "identity: {participant: random, pattern: 'EXP{n:04d}', coupling_list: true}\n"
           "dates: shift\npackage: zip\n")
PHI = [PATIENT_NAME.split("^")[0], "Magnus", PATIENT_ID, BIRTH_DATE, ROOT]


# --- helpers -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(web_world: World) -> World:
    """The shared web world plus ``bob``, a data-manager of BRAVO (this module's own)."""
    add_user(web_world.inst, "bob", PASSWORD)
    add_member(web_world.inst, "BRAVO", "bob", "data-manager")
    web_world.tokens["bob"] = create_token(web_world.inst, "bob")
    return web_world


def _bearer(world: World, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[name]}"}


def _done_job(world: World, acronym: str) -> int:
    """A done export of ``acronym`` whose download is on disk (no process run)."""
    text = builtin_spec("research-package").text
    spec = ExportSpec.from_yaml(text)
    with world.inst.db.session() as session:
        project = session.scalar(select(Project).where(Project.acronym == acronym))
        job = ExportJob(project_id=project.id, spec_name=spec.name, spec_sha256=spec.sha256,
                        spec_text=text, state="done", done=1, total=1, started_by="root",
                        package=spec.name, download=f"{spec.name}.download.zip", n_files=1,
                        error="", lock_token="")
        session.add(job)
        session.flush()
        job_id = job.id
    folder = job_folder(world.settings, job_id)
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / f"{spec.name}.download.zip", "w") as archive:
        archive.writestr(f"{spec.name}/manifest.csv", "path\n")
    return job_id


def _failed_job(world: World, acronym: str, spec_text: str = NOTHING,
                started_by: str = "root") -> int:
    spec = ExportSpec.from_yaml(spec_text)
    with world.inst.db.session() as session:
        project = session.scalar(select(Project).where(Project.acronym == acronym))
        job = ExportJob(project_id=project.id, spec_name=spec.name, spec_sha256=spec.sha256,
                        spec_text=spec.text, state="failed", done=0, total=0,
                        started_by=started_by, package="", download="", n_files=0,
                        error="interrupted; resume", lock_token="")
        session.add(job)
        session.flush()
        return job.id


def _audit_count(world: World) -> int:
    with world.inst.db.session() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent))


def _quiet_client(world: World) -> TestClient:
    """A client that answers 500 as the server would, instead of raising."""
    return TestClient(create_app(world.settings), follow_redirects=False,
                      raise_server_exceptions=False)


# --- 1. exports of another project, by guessing the id ---------------------------------


@pytest.mark.parametrize("outsider", ["nora", "bob"])  # BRAVO member / data-manager
def test_export_of_another_project_does_not_exist_for_an_outsider(world: World, outsider):
    job = _done_job(world, "ALPHA")
    failed = _failed_job(world, "ALPHA")
    client = world.client()
    who = _bearer(world, outsider)
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
    page, csrf = world.login(outsider)
    assert page.get(f"/exports/{job}").status_code == 404
    assert page.get(f"/api/exports/{job}/download").status_code == 404
    assert page.post(f"/exports/{failed}/resume", data={"csrf_token": csrf}).status_code == 404
    with world.inst.db.session() as session:
        assert session.get(ExportJob, failed).state == "failed"  # not resumed
    assert not [e for e in audit_events(world.inst, AuditQuery(action="export.download"))
                if e["details"].get("job") == job]


def test_alpha_data_manager_cannot_reach_a_bravo_export(world: World):
    job = _done_job(world, "BRAVO")
    failed = _failed_job(world, "BRAVO")
    client = world.client()
    dana = _bearer(world, "dana")
    assert client.get(f"/api/exports/{job}", headers=dana).status_code == 404
    assert client.get(f"/api/exports/{job}/download", headers=dana).status_code == 404
    assert client.post(f"/api/exports/{failed}/resume", headers=dana).status_code == 404
    # And BRAVO's own data-manager may (the 404 above is about the project, not the job).
    bob = _bearer(world, "bob")
    assert client.get(f"/api/exports/{job}/download", headers=bob).status_code == 200


def test_a_member_sees_no_export_and_downloads_nothing(world: World):
    job = _done_job(world, "ALPHA")
    client = world.client()
    mike = _bearer(world, "mike")
    assert client.get(f"/api/exports/{job}", headers=mike).status_code == 403
    assert client.get(f"/api/exports/{job}/download", headers=mike).status_code == 403
    assert client.get("/api/projects/ALPHA/exports", headers=mike).status_code == 403


# --- 2. assigning and coupling lists across projects -----------------------------------


# --- 3. paths --------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "name: ../x\n", "name: ..\n", "name: a/b\n", "name: .hidden\n", "name: /etc\n",
    "name: ok\nlayout: '../../{sop_uid}.dcm'\n",
    "name: ok\nlayout: '/tmp/{sop_uid}.dcm'\n",
    "name: ok\nlayout: '{participant}/../../{sop_uid}.dcm'\n",
    "name: ok\nlayout: '{participant}/./{sop_uid}.dcm'\n",
    "name: ok\nlayout: '{participant}//{sop_uid}.dcm'\n",
    "name: ok\nlayout: '{participant.__class__}/{sop_uid}.dcm'\n",
    "name: ok\nlayout: '{participant[0]}/{sop_uid}.dcm'\n",
])
def test_a_stored_spec_cannot_name_a_path_outside_its_folder(world: World, text: str):
    with pytest.raises(InvalidInputError):
        save_spec(world.inst, get_project(world.inst, "ALPHA"), text, "dana")


def test_layout_values_cannot_add_folders():
    values = {"participant": "../..", "event": "..", "modality": "/etc", "study_date": "a/b",
              "series_description": "..\\..\\x", "sop_uid": "../../passwd"}
    path = render("{participant}/{event}/{modality}/{study_date}/{series_description}/"
                  "{sop_uid}.dcm", values)
    assert ".." not in path.split("/") and not path.startswith("/")
    assert path.count("/") == 5 and "\\" not in path
    # The study: built-in takes digits and dots only, so its name is safe too.
    assert builtin_spec("study:1.2.3").name == "study-1.2.3"
    with pytest.raises(InvalidInputError):
        builtin_spec("study:../../x")


def test_a_download_is_a_zip_with_a_safe_file_name(world: World):
    job = _done_job(world, "ALPHA")
    answer = world.client().get(f"/api/exports/{job}/download", headers=_bearer(world, "dana"))
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/zip"
    assert answer.headers["content-disposition"] == \
        f'attachment; filename="ALPHA-research-package-{job}.zip"'
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"


# --- 4. CSRF ---------------------------------------------------------------------------


def _fill(path: str, world: World, ids: dict[str, int]) -> str:
    return (path.replace("{acronym}", "ALPHA").replace("{export_id}", str(ids["export"]))
            .replace("{study_id}", str(ids["study"])).replace("{name}", "zed"))


def test_every_state_changing_route_refuses_a_cookie_without_the_csrf_token(world: World):
    save_spec(world.inst, get_project(world.inst, "ALPHA"), NOTHING, "root")
    ids = {"export": _failed_job(world, "ALPHA"), "study": quarantined_study(world, study=67)}
    root, _ = world.login("root")
    _, dana_csrf = world.login("dana")
    routes = [(method, route.path) for router in (pages.router, api.router)
              for route in router.routes if isinstance(route, APIRoute)
              for method in route.methods if method not in ("GET", "HEAD", "OPTIONS")]
    assert len(routes) >= 20
    before = _audit_count(world)
    for method, path in routes:
        url = _fill(path, world, ids)
        if path.startswith("/api/"):
            calls = [dict(json={"spec": "nothing", "project": "ALPHA",
                                "participant": "TP-0067", "event": "baseline",
                                "role": "member", "tag_paths": ["00080060"]}),
                     dict(json={"spec": "nothing"}, headers={"X-CSRF-Token": dana_csrf}),
                     dict(json={"spec": "nothing"}, headers={"X-CSRF-Token": ""})]
        else:
            calls = [dict(data={"spec": "nothing", "text": NOTHING, "name": "zed",
                                "role": "member", "project": "ALPHA",
                                "new_participant": "TP-0067", "event": "baseline"}),
                     dict(data={"csrf_token": dana_csrf, "spec": "nothing"}),
                     dict(data={"csrf_token": ""})]
        for call in calls:
            answer = root.request(method, url, **call)
            assert answer.status_code == 403, (method, url, call, answer.status_code)
    assert _audit_count(world) == before
    with world.inst.db.session() as session:
        assert session.get(ExportJob, ids["export"]).state == "failed"


def test_a_bearer_token_ignores_the_cookie_and_the_cookie_needs_the_header(world: World):
    page, csrf = world.login("dana")
    # The same cookie with the token as header, via JSON: accepted.
    ok = page.post("/api/coupling-lists", headers={"X-CSRF-Token": csrf},
                   content=(HEADER + "CS-1,ALPHA,TP-0001,baseline\n").encode())
    assert ok.status_code == 200, ok.text
    # Cookie, no header: refused, whatever the content type.
    for content_type in ("text/csv", "text/plain", "application/json"):
        answer = page.post("/api/coupling-lists", headers={"Content-Type": content_type},
                           content=(HEADER + "CS-2,ALPHA,TP-0001,baseline\n").encode())
        assert answer.status_code == 403
    # A bad bearer with a good cookie: refused, not silently the cookie's user.
    assert page.get("/api/me", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert page.get("/api/me", headers={"Authorization": "Basic eDp5"}).status_code == 401


def test_the_session_cookie_is_httponly_and_samesite(world: World):
    client = world.client()
    form = client.get("/login")
    cookie = form.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


# --- 5. PHI in logs, errors and the audit log ----------------------------------------


def test_an_export_job_leaves_no_phi_in_its_log_or_its_row(world: World):
    client = world.client()
    dana = _bearer(world, "dana")
    saved = client.post("/api/projects/ALPHA/export-specs", content=COUPLED.encode(),
                        headers={**dana, "Content-Type": "application/yaml"})
    assert saved.status_code == 200, saved.text
    job = client.post("/api/projects/ALPHA/exports", json={"spec": "coupled"},
                      headers=dana).json()["id"]
    view = wait_for_export(world, job)
    assert view.state == "done", view.error
    log = (world.settings.log_dir / f"export-{job}.log").read_text()
    row = json.dumps(client.get(f"/api/exports/{job}", headers=dana).json())
    for value in PHI:
        assert value not in log and value not in row
    assert oct((world.settings.log_dir / f"export-{job}.log").stat().st_mode & 0o777) == \
        "0o600"
    # The coupling list: beside the package, owner-only, never in the download.
    folder = job_folder(world.settings, job)
    coupling = folder / "coupled.coupling-list.csv"
    assert oct(coupling.stat().st_mode & 0o777) == "0o600"
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert oct(world.settings.exports_dir.stat().st_mode & 0o777) == "0o700"
    download = client.get(f"/api/exports/{job}/download", headers=dana)
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        assert not [n for n in archive.namelist() if "coupling" in n]
        assert not any(coupling.read_bytes() in archive.read(n) for n in archive.namelist())


def test_errors_do_not_echo_what_may_be_a_patients_id(world: World):
    study = quarantined_study(world, study=68)
    client = world.client()
    dana = _bearer(world, "dana")
    answer = client.post(f"/api/quarantine/{study}/assign", headers=dana,
                         json={"project": "ALPHA", "participant": PATIENT_ID,
                               "event": "baseline"})
    assert answer.status_code == 422 and PATIENT_ID not in answer.text
    coupled = client.post("/api/coupling-lists", headers=dana,
                          content=(HEADER + f"E-1,ALPHA,{PATIENT_ID},baseline\n").encode())
    assert coupled.status_code == 422 and PATIENT_ID not in coupled.text
    page, csrf = world.login("dana")
    form = page.post(f"/assign/{study}", data={
        "csrf_token": csrf, "project": "ALPHA", "participant": "",
        "new_participant": PATIENT_NAME, "event": "baseline"})
    assert form.status_code == 422 and "Testesen" not in form.text
    # A validation error names the field, never the value sent.
    bad = client.post(f"/api/quarantine/{study}/assign", headers=dana,
                      json={"project": "ALPHA", "participant": PATIENT_ID * 10,
                            "event": "baseline"})
    assert bad.status_code == 422 and PATIENT_ID not in bad.text


def test_the_audit_log_records_the_new_actions_without_phi(world: World):
    world.login("dana")
    study = quarantined_study(world, study=69)
    client = world.client()
    dana = _bearer(world, "dana")
    assert client.post(f"/api/quarantine/{study}/assign", headers=dana,
                       json={"project": "ALPHA", "participant": "TP-0069",
                             "event": "baseline"}).status_code == 200
    assert client.post("/api/coupling-lists", headers=dana,
                       content=(HEADER + "AU-1,ALPHA,TP-0070,baseline\n").encode()
                       ).status_code == 200
    job = _done_job(world, "ALPHA")
    assert client.get(f"/api/exports/{job}/download", headers=dana).status_code == 200
    events = audit_events(world.inst, AuditQuery())
    actions = {(e["actor"], e["action"]) for e in events}
    assert {("dana", "assign"), ("dana", "coupling.upload"), ("dana", "export.download"),
            ("dana", "login")} <= actions
    text = json.dumps(events, default=str)
    for value in [*PHI, "PAT-77", ACCESSION, "AU-1"]:
        assert value not in text, value


# --- 6. export jobs: failure modes ----------------------------------------------------


def _hold_slot(world: World) -> int:
    locks = world.settings.exports_dir / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    slot = os.open(locks / "slot", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(slot, fcntl.LOCK_EX)
    return slot


def test_a_queued_job_runs_the_spec_it_was_started_with(world: World):
    project = get_project(world.inst, "ALPHA")
    save_spec(world.inst, project, COUPLED.replace("baseline", "followup"), "dana")
    client = world.client()
    dana = _bearer(world, "dana")
    slot = _hold_slot(world)
    try:
        job = client.post("/api/projects/ALPHA/exports", json={"spec": "coupled"},
                          headers=dana).json()
        # Queued behind the slot: the stored spec changes; a resume is refused.
        save_spec(world.inst, project, COUPLED, "dana")
        assert client.post(f"/api/exports/{job['id']}/resume",
                           headers=dana).status_code == 409
    finally:
        os.close(slot)
    done = wait_for_export(world, job["id"])
    assert done.state == "done", done.error
    assert done.spec_sha256 == job["spec_sha256"]
    assert done.n_files > 0


def test_two_resumes_at_once_start_one_process(world: World):
    job = _failed_job(world, "ALPHA")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def resume() -> None:
        barrier.wait()
        try:
            resume_export(world.inst, job, "dana")
            outcomes.append("started")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=resume) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict", "started"]
    assert wait_for_export(world, job).state == "failed"  # NOTHING selects nothing
    resumed = [e for e in audit_events(world.inst, AuditQuery(action="export.resume"))
               if e["details"]["job"] == job]
    assert len(resumed) == 1


def test_a_job_whose_spec_text_became_invalid_fails_with_a_message(world: World):
    job = _failed_job(world, "ALPHA")
    with world.inst.db.session() as session:
        session.get(ExportJob, job).spec_text = "name: [broken\n"
    assert world.client().post(f"/api/exports/{job}/resume",
                               headers=_bearer(world, "dana")).status_code == 202
    done = wait_for_export(world, job)
    assert done.state == "failed" and done.error.startswith("spec is not valid YAML")
    assert done.resumable
