"""A small installation for the web tests: two projects, data, and one user per role."""

from __future__ import annotations

import datetime as dt
import io
import re
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from rpacs.accounts import add_member, add_user, create_token
from rpacs.db import ExportJob, Project, Series
from rpacs.export import ExportJobView, ExportSpec, export_job, resolve_spec, start_export
from rpacs.export.jobs import job_folder
from rpacs.export.spec import builtin_spec
from rpacs.ingest import import_paths
from rpacs.installation import Installation
from rpacs.projects import ProjectSpec, create_project, get_project
from rpacs.quarantine import Arrival, Quarantine
from rpacs.settings import Settings
from rpacs.web import create_app

from . import dicom_factory as f
from .conftest import PROJECT

PASSWORD = "correct horse battery staple"
#: User name → (project, role); "root" is an admin in no project, "nora" and "bob" are in
#: BRAVO only (bob: the other project's data-manager, for what must not cross projects).
PEOPLE = {
    "root": None,
    "olivia": ("ALPHA", "owner"),
    "dana": ("ALPHA", "data-manager"),
    "mike": ("ALPHA", "member"),
    "nora": ("BRAVO", "member"),
    "bob": ("BRAVO", "data-manager"),
}


@dataclass
class World:
    settings: Settings
    inst: Installation
    tokens: dict[str, str] = field(default_factory=dict)
    series_ids: list[int] = field(default_factory=list)

    def client(self) -> TestClient:
        return TestClient(create_app(self.settings), follow_redirects=False)

    def login(self, name: str) -> tuple[TestClient, str]:
        """A client with a logged-in session, and the session's CSRF token."""
        client = self.client()
        form = client.get("/login")
        token = csrf_of(form.text)
        done = client.post("/login", data={"name": name, "password": PASSWORD,
                                           "csrf_token": token, "next": "/projects"})
        assert done.status_code == 303, done.text
        return client, csrf_of(client.get("/projects").text)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def zip_of_study(folder: Path) -> bytes:
    """A zip holding a small study with planted values (and one file that is not DICOM)."""
    paths = f.write_study(folder, series=2, per_series=2)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for path in paths:
            archive.write(path, f"study/{path.name}")
        archive.writestr("study/README.txt", "not an image")
    return out.getvalue()


def build_world(home: Path, inputs: Path) -> World:
    settings = Settings(home=home, database_url=None, config=None, workers=1)
    inst = Installation.open(settings)
    create_project(inst, ProjectSpec(**{**PROJECT, "acronym": "ALPHA"}))
    create_project(inst, ProjectSpec(**{**PROJECT, "acronym": "BRAVO", "end_date": "2099-01-01"}))
    import_paths(inst, "ALPHA", "TP-0001", "baseline",
                 f.write_study(inputs / "a", series=2, per_series=3), workers=1)
    import_paths(inst, "ALPHA", "TP-0002", "followup",
                 f.write_study(inputs / "b", study=2, series=1, per_series=2,
                               patient_id="OTHER-1"), workers=1)
    world = World(settings=settings, inst=inst)
    for name, membership in PEOPLE.items():
        add_user(inst, name, PASSWORD, is_admin=name == "root")
        if membership:
            add_member(inst, membership[0], name, membership[1])
        world.tokens[name] = create_token(inst, name)
    add_user(inst, "zed", PASSWORD)  # moved in and out of ALPHA by the member routes
    with inst.db.session() as session:
        world.series_ids = list(session.scalars(select(Series.id).order_by(Series.id)))
    return world


def finished_export(world: World, spec: str = "research-package", actor: str = "dana",
                    timeout: float = 180) -> int:
    """Start an export of ALPHA through the service and wait for its process to end."""
    project = get_project(world.inst, "ALPHA")
    job = start_export(world.inst, project, resolve_spec(world.inst, project, spec), actor)
    return wait_for_export(world, job.id, timeout).id


def wait_for_export(world: World, job_id: int, timeout: float = 180) -> ExportJobView:
    """The job once it is done or failed (an AssertionError if it is neither in time)."""
    deadline = time.monotonic() + timeout
    while True:
        job = export_job(world.inst, job_id)
        if job.state in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, f"export {job_id} still {job.state}"
        time.sleep(0.1)


def failed_export(world: World, spec_text: str, acronym: str = "ALPHA",
                  started_by: str = "dana") -> int:
    """A failed job (no process), as one whose process was killed would be."""
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


def done_export(world: World, acronym: str = "ALPHA") -> int:
    """A done research-package job whose download is on disk (no process run)."""
    spec = builtin_spec("research-package")
    with world.inst.db.session() as session:
        project = session.scalar(select(Project).where(Project.acronym == acronym))
        job = ExportJob(project_id=project.id, spec_name=spec.name, spec_sha256=spec.sha256,
                        spec_text=spec.text, state="done", done=1, total=1, started_by="root",
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


def quarantined_study(world: World, study: int = 7) -> int:
    """A study filed in the quarantine as the gateway files a C-STORE; its number there."""
    folder = world.settings.home.parent / f"received-{study}"
    paths = f.write_study(folder, study=study, series=1, per_series=2, patient_id="PAT-77")
    quarantine = Quarantine(world.inst)
    arrival = Arrival("SCANNER", "RPACS", dt.datetime.now(dt.UTC))
    for path in paths:
        quarantine.receive(path.read_bytes(), arrival)
    return next(e.id for e in quarantine.entries() if e.images == len(paths)
                and e.calling_ae == "SCANNER" and e.state == "receiving")
