"""The web app through HTTP: login and sessions, the pages, review, zip review, audit, API."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from rpacs.accounts import add_member
from rpacs.audit import AuditQuery, audit_events
from rpacs.db import AuditEvent, ExportJob
from rpacs.errors import InvalidInputError
from rpacs.export import save_spec
from rpacs.ingest import import_paths
from rpacs.preview import render_png
from rpacs.projects import ProjectSpec, create_project, ethics_state, get_project
from rpacs.review import review_zip
from rpacs.settings import Settings
from rpacs.web import api, create_app, pages

from . import dicom_factory as f
from .conftest import PROJECT
from .web_world import (
    PASSWORD,
    World,
    csrf_of,
    done_export,
    failed_export,
    quarantined_study,
    zip_of_study,
)


def _audit_count(world: World) -> int:
    with world.inst.db.session() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent))

# --- logging in -------------------------------------------------------------------------


def test_login_sets_a_safe_cookie_and_logout_ends_it(web_world: World):
    client = web_world.client()
    assert client.get("/projects").headers["location"] == "/login?next=%2Fprojects"
    form = client.get("/login")
    token = csrf_of(form.text)
    # The session a login form starts (for its CSRF token) is as safe a cookie already.
    assert "httponly" in form.headers["set-cookie"].lower()
    assert "samesite=lax" in form.headers["set-cookie"].lower()
    wrong = client.post("/login", data={"name": "mike", "password": "nope", "csrf_token": token})
    assert wrong.status_code == 401 and "wrong user name or password" in wrong.text
    done = client.post("/login", data={"name": "mike", "password": PASSWORD,
                                       "csrf_token": token, "next": "//evil.example/x"})
    assert done.status_code == 303 and done.headers["location"] == "/projects"
    cookie = done.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    old_cookie = client.cookies.get("rpacs_session")
    page = client.get("/projects")
    assert "ALPHA" in page.text and "BRAVO" not in page.text
    client.post("/logout", data={"csrf_token": csrf_of(page.text)})
    replay = web_world.client()
    replay.cookies.set("rpacs_session", old_cookie)
    assert replay.get("/projects").status_code == 303  # a copied cookie is void after logout


def test_forms_without_the_csrf_token_are_refused(web_world: World):
    client = web_world.client()
    client.get("/login")
    forged = client.post("/login", data={"name": "mike", "password": PASSWORD})
    assert forged.status_code == 403 and "reload the page" in forged.text
    session, _ = web_world.login("olivia")
    refused = session.post("/projects/ALPHA/members", data={"name": "zed", "role": "owner"})
    assert refused.status_code == 403
    assert "zed" not in session.get("/projects/ALPHA/members").text


def _fill(path: str, ids: dict[str, int]) -> str:
    return (path.replace("{acronym}", "ALPHA").replace("{export_id}", str(ids["export"]))
            .replace("{study_id}", str(ids["study"])).replace("{name}", "zed"))


def test_every_state_changing_route_refuses_a_cookie_without_the_csrf_token(web_world: World):
    """Every POST/PUT/DELETE route, found from the routers: with an admin's cookie and no
    token, an empty one or another session's, each is refused and nothing is done."""
    nothing = "name: nothing\nselect: {participants: [TP-9999]}\n"
    save_spec(web_world.inst, get_project(web_world.inst, "ALPHA"), nothing, "root")
    ids = {"export": failed_export(web_world, nothing),
           "study": quarantined_study(web_world, study=67)}
    root, _ = web_world.login("root")
    _, dana_csrf = web_world.login("dana")
    routes = [(method, route.path) for router in (pages.router, api.router)
              for route in router.routes if isinstance(route, APIRoute)
              for method in route.methods if method not in ("GET", "HEAD", "OPTIONS")]
    assert len(routes) >= 20
    before = _audit_count(web_world)
    for method, path in routes:
        url = _fill(path, ids)
        if path.startswith("/api/"):
            calls = [dict(json={"spec": "nothing", "project": "ALPHA",
                                "participant": "TP-0067", "event": "baseline",
                                "role": "member", "tag_paths": ["00080060"]}),
                     dict(json={"spec": "nothing"}, headers={"X-CSRF-Token": dana_csrf}),
                     dict(json={"spec": "nothing"}, headers={"X-CSRF-Token": ""})]
        else:
            calls = [dict(data={"spec": "nothing", "text": nothing, "name": "zed",
                                "role": "member", "project": "ALPHA",
                                "new_participant": "TP-0067", "event": "baseline"}),
                     dict(data={"csrf_token": dana_csrf, "spec": "nothing"}),
                     dict(data={"csrf_token": ""})]
        for call in calls:
            answer = root.request(method, url, **call)
            assert answer.status_code == 403, (method, url, call, answer.status_code)
    assert _audit_count(web_world) == before
    with web_world.inst.db.session() as session:
        assert session.get(ExportJob, ids["export"]).state == "failed"


def test_a_bearer_token_ignores_the_cookie_and_the_cookie_needs_the_header(web_world: World):
    page, csrf = web_world.login("dana")
    header = "accession_number,project,participant,event\n"
    # The same cookie with the token as header, via JSON: accepted.
    ok = page.post("/api/coupling-lists", headers={"X-CSRF-Token": csrf},
                   content=(header + "CS-1,ALPHA,TP-0001,baseline\n").encode())
    assert ok.status_code == 200, ok.text
    # Cookie, no header: refused, whatever the content type.
    for content_type in ("text/csv", "text/plain", "application/json"):
        answer = page.post("/api/coupling-lists", headers={"Content-Type": content_type},
                           content=(header + "CS-2,ALPHA,TP-0001,baseline\n").encode())
        assert answer.status_code == 403
    # A bad bearer with a good cookie: refused, not silently the cookie's user.
    assert page.get("/api/me", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert page.get("/api/me", headers={"Authorization": "Basic eDp5"}).status_code == 401


def test_every_response_carries_the_security_headers(web_world: World):
    for path in ("/login", "/api/projects", "/static/style.css"):
        headers = web_world.client().get(path).headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
    assert web_world.client().get("/login").headers["cache-control"] == "no-store"


def test_no_asset_comes_from_elsewhere(web_world: World):
    client, _ = web_world.login("olivia")
    for path in ("/projects", "/projects/ALPHA", "/projects/ALPHA/review", "/review-zip"):
        html = client.get(path).text
        assert "http://" not in html and "https://" not in html and "style=" not in html
        assert "<script>" not in html  # only the packaged script file


# --- projects, overview and thumbnails --------------------------------------------------


def test_ethics_end_is_highlighted_when_near():
    today = dt.date(2026, 1, 1)
    assert ethics_state(dt.date(2026, 3, 1), today) == "ending"  # 59 days
    assert ethics_state(dt.date(2026, 3, 3), today) == ""
    assert ethics_state(dt.date(2025, 12, 31), today) == "ended"


def test_projects_page_counts_and_highlights(installation, tmp_path):
    soon = dt.date.today() + dt.timedelta(days=30)
    create_project(installation, ProjectSpec(**{**PROJECT, "acronym": "SOONX",
                                                "start_date": "2020-01-01", "end_date": soon}))
    from rpacs.accounts import add_user

    add_user(installation, "ann", PASSWORD)
    add_member(installation, "SOONX", "ann", "member")
    world = World(settings=installation.settings, inst=installation)
    client, _ = world.login("ann")
    html = client.get("/projects").text
    assert "SOONX" in html and 'class="ending"' in html and "ends soon" in html


def test_overview_grid_and_series(web_world: World):
    client, _ = web_world.login("mike")
    html = client.get("/projects/ALPHA").text
    assert "TP-0001" in html and "TP-0002" in html and "1 study" in html and "MR" in html
    assert "/projects/ALPHA/series?participant=TP-0001&amp;event=baseline" in html
    grid = client.get("/api/projects/ALPHA/overview").json()
    cells = {(c["participant"], c["event"]): c for c in grid["cells"]}
    assert cells["TP-0001", "baseline"]["series"] == 2 and ("TP-0001", "followup") not in cells
    series = client.get("/projects/ALPHA/series?participant=TP-0002").text
    assert series.count('class="thumb"') == 1


def test_thumbnail_is_a_cached_png_of_the_series(web_world: World):
    client, _ = web_world.login("mike")
    url = f"/projects/ALPHA/series/{web_world.series_ids[0]}/thumbnail.png"
    answer = client.get(url)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(answer.content)).size == (16, 16)
    cached = list((web_world.settings.thumbnail_dir / "ALPHA").glob("*.png"))
    assert cached and not list((web_world.settings.thumbnail_dir / "ALPHA").glob(".*tmp"))
    # Another project's series number does not reach this project's files.
    assert client.get("/projects/ALPHA/series/999999/thumbnail.png").status_code == 404


def test_render_uses_the_window_and_inverts_monochrome1():
    ds = f.mr_dataset(rows=4, cols=4)
    ds.PixelData = np.array([[0, 100, 200, 300]] * 4, dtype=np.uint16).tobytes()
    ds.WindowCenter, ds.WindowWidth = 150, 100  # shows 100..200
    grey = np.asarray(Image.open(io.BytesIO(render_png(ds))))
    assert list(grey[0]) == [0, 0, 255, 255]
    ds.PhotometricInterpretation = "MONOCHROME1"
    assert list(np.asarray(Image.open(io.BytesIO(render_png(ds))))[0]) == [255, 255, 0, 0]


#: JPEG 2000, JPEG baseline (colour), JPEG-LS, JPEG lossless, RLE, multi-frame RLE.
COMPRESSED = ["JPEG2000.dcm", "SC_rgb_jpeg_dcmtk.dcm", "MR_small_jpeg_ls_lossless.dcm",
              "JPEG-LL.dcm", "MR_small_RLE.dcm", "SC_rgb_rle_2frame.dcm", "MR2_J2KR.dcm"]
_DATA = [Path(pydicom.__file__).parent / "data" / "test_files",
         Path(pydicom.__file__).parent.parent / "data_store" / "data"]


@pytest.mark.parametrize("name", COMPRESSED)
def test_compressed_pixel_data_is_rendered(name):
    found = [p for folder in _DATA for p in folder.glob(f"**/{name}")]
    assert found, f"{name} is not among pydicom's or pydicom-data's files"
    ds = pydicom.dcmread(found[0])
    image = Image.open(io.BytesIO(render_png(ds)))
    assert max(image.size) <= 160 and np.asarray(image).std() > 0  # a picture, not a blank


# --- review -----------------------------------------------------------------------------


def test_review_filters_and_sorts(web_world: World):
    client, _ = web_world.login("mike")

    def tags(**params: str) -> list[str]:
        answer = client.get("/api/projects/ALPHA/review", params=params)
        assert answer.status_code == 200, answer.text
        return [t["keyword_path"] for t in answer.json()["tags"]]

    everything = tags()
    assert "PatientID" in everything and len(everything) > 30
    assert tags(q="patientid") == ["PatientID", "PatientIdentityRemoved"]
    assert tags(q="(0010,0020)") == ["PatientID"] == tags(q="00100020")
    nested = tags(nesting="nested")
    assert nested and all(">" in k for k in nested)
    assert all(">" not in k for k in tags(nesting="top"))
    by_count = client.get("/api/projects/ALPHA/review",
                          params={"show": "all", "sort": "instances", "desc": "1"}).json()
    counts = [t["n_instances"] for t in by_count["tags"]]
    assert counts == sorted(counts, reverse=True)
    bad = client.get("/api/projects/ALPHA/review", params={"sort": "colour", "nesting": "x"})
    assert bad.status_code == 422 and len(bad.json()["problems"]) == 2
    html = client.get("/projects/ALPHA/review?q=PatientID&show=all").text
    assert 'aria-sort="ascending"' in html and "PatientID" in html


def test_values_show_counts_and_series(web_world: World):
    client, _ = web_world.login("dana")
    data = client.get("/api/projects/ALPHA/review/values",
                      params={"tag_path": "00100020"}).json()
    values = {v["value"]: v for v in data["values"]}
    assert values["TP-0001"]["count"] == 6 and values["TP-0002"]["count"] == 2
    assert [s["participant"] for s in values["TP-0002"]["series"]] == ["TP-0002"]
    assert len(values["TP-0001"]["series"]) == 2 and data["complete"]
    page = client.get("/projects/ALPHA/review/values?tag_path=00100020").text
    assert "TP-0001" in page and "#1 MR" in page
    missing = client.get("/api/projects/ALPHA/review/values", params={"tag_path": "7FE00010x"})
    assert missing.status_code == 404


def test_checked_tags_leave_the_new_view_until_they_change(installation, tmp_path):
    create_project(installation, ProjectSpec(**PROJECT))
    import_paths(installation, "TESTPROJ", "TP-0001", "baseline",
                 f.write_study(tmp_path / "a", series=1, per_series=2), workers=1)
    from rpacs.accounts import add_user

    add_user(installation, "rita", PASSWORD)
    add_member(installation, "TESTPROJ", "rita", "member")
    client, token = World(settings=installation.settings, inst=installation).login("rita")
    done = client.post("/projects/TESTPROJ/review/checks",
                       data={"tag_path": ["00080060", "00100020"], "csrf_token": token,
                             "back": "q=&show=new"})
    assert done.status_code == 303 and done.headers["location"].endswith("?q=&show=new")
    new = [t["tag_path"] for t in
           client.get("/api/projects/TESTPROJ/review?show=new").json()["tags"]]
    assert "00080060" not in new and "00100020" not in new and "00080020" in new
    every = {t["tag_path"]: t for t in
             client.get("/api/projects/TESTPROJ/review").json()["tags"]}
    assert every["00100020"]["checked"]["by"] == "rita" and not every["00100020"]["new"]
    # A new participant adds a PatientID value: that tag is new again, Modality is not.
    import_paths(installation, "TESTPROJ", "TP-0002", "baseline",
                 f.write_study(tmp_path / "b", study=2, series=1, per_series=1,
                               patient_id="P2"), workers=1)
    new = [t["tag_path"] for t in
           client.get("/api/projects/TESTPROJ/review?show=new").json()["tags"]]
    assert "00100020" in new
    bad = client.post("/api/projects/TESTPROJ/review/checks", json={"tag_paths": ["99999999"]},
                      headers={"X-CSRF-Token": token})
    assert bad.status_code == 422 and "not in the inventory" in bad.json()["detail"]
    events = audit_events(installation, AuditQuery(action="review.check"))
    assert events[0]["actor"] == "rita" and events[0]["count"] == 2


# --- review a zip -----------------------------------------------------------------------


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_zip_review_flags_and_stores_nothing(web_world: World, tmp_path: Path):
    client, token = web_world.login("mike")
    before = set(web_world.settings.home.rglob("*"))
    answer = client.post("/review-zip", data={"csrf_token": token},
                         files={"package": ("p.zip", zip_of_study(tmp_path), "application/zip")})
    assert answer.status_code == 200
    assert "4 DICOM" in answer.text and "README.txt: not a DICOM file" in answer.text
    assert "person name" in answer.text and "Testesen" in answer.text
    api = web_world.client().post(
        "/api/review-zip", content=zip_of_study(tmp_path / "again"),
        headers={"Authorization": f"Bearer {web_world.tokens['mike']}",
                 "Content-Type": "application/zip"}).json()
    name = next(t for t in api["tags"] if t["keyword_path"] == "PatientName")
    assert name["flags"] == ["person name"] and name["n_instances"] == 4
    assert name["top_values"][0]["series"] == ["series 1 MR t1_mprage_sag",
                                               "series 2 MR t1_mprage_sag"]
    after = set(web_world.settings.home.rglob("*"))
    stored = {p for p in after - before if "logs" not in p.parts and not p.name.endswith(
        ("-wal", "-shm"))}
    assert stored == set()  # nothing of the zip, not even a temporary folder, remains


def test_zip_review_refuses_escaping_entries_and_big_uploads(tmp_path: Path, web_world: World):
    client, token = web_world.login("mike")
    evil = _zip({"ok.dcm": b"x", "../../etc/passwd": b"root"})
    answer = client.post("/review-zip", data={"csrf_token": token},
                         files={"package": ("p.zip", evil, "application/zip")})
    assert answer.status_code == 422 and "../../etc/passwd" in answer.text
    assert "leaves the folder" in answer.text
    bearer = {"Authorization": f"Bearer {web_world.tokens['mike']}"}
    not_zip = web_world.client().post("/api/review-zip", content=b"PK? no", headers=bearer)
    assert not_zip.status_code == 422 and "not a readable zip" in not_zip.json()["detail"]
    small = Settings(home=tmp_path / "h", database_url=None, config=None,
                     review_upload_max_mb=1)
    big = TestClient(create_app(small)).post("/api/review-zip", content=b"0" * (2 * 2**20))
    assert big.status_code == 413 and "review_upload_max_mb" in big.json()["detail"]


def test_a_body_longer_than_it_said_is_stopped_while_it_is_read():
    """read_body counts what arrives: a Content-Length that lies does not get a larger body
    into memory (the server checks the length too; this does not rely on it)."""
    import asyncio

    from starlette.requests import Request

    from rpacs.errors import TooLargeError
    from rpacs.web.uploads import read_body

    sent: list[int] = []

    async def receive() -> dict[str, object]:
        sent.append(1)
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    request = Request({"type": "http", "method": "POST", "path": "/",
                       "headers": [(b"content-length", b"10")]}, receive)
    with pytest.raises(TooLargeError, match="the list is larger than 4 KiB"):
        asyncio.run(read_body(request, 4096, "the list"))
    assert len(sent) == 5  # stopped at the first chunk past the limit
    declared = Request({"type": "http", "method": "POST", "path": "/",
                        "headers": [(b"content-length", b"4097")]}, receive)
    with pytest.raises(TooLargeError):
        asyncio.run(read_body(declared, 4096, "the list"))
    assert len(sent) == 5  # refused by its declared length: nothing read


def test_a_zip_bomb_is_refused_before_it_fills_the_disk(tmp_path: Path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.dcm", b"\0" * (3 * 2**20))  # a few KB on the wire
    assert bomb.stat().st_size < 2**20
    with pytest.raises(InvalidInputError, match="unpacks to more than 1 MB"):
        review_zip(bomb, tmp_path / "work", 2**20)
    assert list((tmp_path / "work").iterdir()) == []


# --- members, audit and the API ---------------------------------------------------------


def test_membership_changes_on_the_web_are_audited(web_world: World):
    client, token = web_world.login("olivia")
    client.post("/projects/ALPHA/members", data={"name": "zed", "role": "data-manager",
                                                 "csrf_token": token})
    assert "zed" in client.get("/projects/ALPHA/members").text
    client.post("/projects/ALPHA/members/remove", data={"name": "zed", "csrf_token": token})
    log = client.get("/api/projects/ALPHA/audit", params={"action": "member."}).json()
    assert [(e["action"], e["actor"], e["details"]["user"]) for e in log[:2]] == [
        ("member.remove", "olivia", "zed"), ("member.add", "olivia", "zed")]
    page = client.get("/projects/ALPHA/audit?actor=olivia&action=member.").text
    assert "member.remove" in page and "login" not in page.split("<tbody>")[1]
    logins = web_world.client().get("/api/audit", params={"action": "login"},
                                    headers={"Authorization": f"Bearer {web_world.tokens['root']}"})
    assert any(e["actor"] == "olivia" for e in logins.json())


def test_the_audit_log_records_the_new_actions_without_phi(web_world: World):
    web_world.login("dana")
    study = quarantined_study(web_world, study=69)
    client = web_world.client()
    dana = {"Authorization": f"Bearer {web_world.tokens['dana']}"}
    assert client.post(f"/api/quarantine/{study}/assign", headers=dana,
                       json={"project": "ALPHA", "participant": "TP-0069",
                             "event": "baseline"}).status_code == 200
    assert client.post("/api/coupling-lists", headers=dana,
                       content=b"accession_number,project,participant,event\n"
                               b"AU-1,ALPHA,TP-0070,baseline\n").status_code == 200
    job = done_export(web_world, "ALPHA")
    assert client.get(f"/api/exports/{job}/download", headers=dana).status_code == 200
    events = audit_events(web_world.inst, AuditQuery())
    actions = {(e["actor"], e["action"]) for e in events}
    assert {("dana", "assign"), ("dana", "coupling.upload"), ("dana", "export.download"),
            ("dana", "login")} <= actions
    text = json.dumps(events, default=str)
    for value in [f.PATIENT_NAME.split("^")[0], "Magnus", f.PATIENT_ID, f.BIRTH_DATE, f.ROOT,
                  "PAT-77", f.ACCESSION, "AU-1"]:
        assert value not in text, value


def test_api_errors_are_json_a_user_can_act_on(web_world: World):
    client = web_world.client()
    anonymous = client.get("/api/projects")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert "rpacs token create" in anonymous.json()["detail"] or "log in" in \
        anonymous.json()["detail"]
    basic = client.get("/api/projects", headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401 and "Bearer TOKEN" in basic.json()["detail"]
    bearer = {"Authorization": f"Bearer {web_world.tokens['nora']}"}
    hidden = client.get("/api/projects/ALPHA/review", headers=bearer)
    assert hidden.status_code == 404 and hidden.json()["detail"] == "no project 'ALPHA'"
    projects = client.get("/api/projects", headers=bearer).json()
    assert [p["acronym"] for p in projects] == ["BRAVO"] and "secret" not in projects[0]
    denied = client.get("/api/projects/ALPHA/audit",
                        headers={"Authorization": f"Bearer {web_world.tokens['dana']}"})
    assert denied.status_code == 403 and "owners" in denied.json()["detail"]
    spec = client.get("/api/openapi.json").json()
    assert {"/api/projects", "/api/projects/{acronym}/review"} <= set(spec["paths"])
    assert not any(path.startswith("/projects") for path in spec["paths"])


def test_values_from_the_files_are_escaped(web_world: World, tmp_path: Path):
    ds = f.mr_dataset()
    ds.ImageComments = '<script>alert("x")</script>'
    path = f.write(ds, tmp_path / "x.dcm")
    client, token = web_world.login("mike")
    answer = client.post("/review-zip", data={"csrf_token": token},
                         files={"package": ("p.zip", _zip({"x.dcm": path.read_bytes()}),
                                            "application/zip")})
    assert answer.status_code == 200
    assert "&lt;script&gt;alert" in answer.text and '<script>alert("x")' not in answer.text
