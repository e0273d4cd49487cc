"""The Assign page: a study received over DICOM (DCMTK's storescu to the gateway) assigned
through the web app by a data manager, and a coupling list uploaded beside it.

World: the shared web web_world (see tests/web_world.py): ALPHA's users, and BRAVO's nora
(member) and bob (data-manager).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from rpacs.audit import AuditQuery, audit_events
from rpacs.db import AuditEvent, CouplingEntry, Participant, Project, QuarantineStudy, Study
from rpacs.errors import ConflictError
from rpacs.net import Gateway, GatewayConfig, start_gateway
from rpacs.quarantine import Quarantine
from rpacs.routing import (
    Assignment,
    Reason,
    apply_assignment,
    assign_study,
    withdraw_participant,
)
from rpacs.routing.coupling import accession_key
from rpacs.web import create_app

from .dicom_factory import BIRTH_DATE, PATIENT_ID, PATIENT_NAME, uid, write_study
from .gateway_support import storescu
from .web_world import World, quarantined_study

needs_dcmtk = pytest.mark.skipif(shutil.which("storescu") is None,
                                 reason="DCMTK is not installed (make test installs it)")
STUDY = 31
HEADER = "accession_number,project,participant,event\n"


def _bearer(world: World, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[name]}"}


def _quiet_client(world: World) -> TestClient:
    """A client that answers 500 as the server would, instead of raising."""
    return TestClient(create_app(world.settings), follow_redirects=False,
                      raise_server_exceptions=False)


@pytest.fixture
def gateway(web_world: World) -> Iterator[Gateway]:
    gw = start_gateway(web_world.inst, GatewayConfig(
        ae_title="RPACS", host="127.0.0.1", port=0, study_timeout=0.3, monitor_interval=0.05))
    yield gw
    gw.stop()


@needs_dcmtk
def test_a_data_manager_assigns_a_received_study(web_world: World, gateway: Gateway, tmp_path):
    paths = write_study(tmp_path / "in", study=STUDY, series=2, per_series=2)
    assert storescu(gateway.port, *paths, calling="MRI-3").returncode == 0
    assert Quarantine(web_world.inst).wait_until_complete(uid(STUDY), 30) == "complete"
    client, csrf = web_world.login("dana")

    listed = client.get("/assign")
    assert listed.status_code == 200
    row = next(r for r in listed.text.split("<tr>") if "MRI-3" in r)
    assert ">2</td>" in row and ">4</td>" in row  # series, images
    # Never the patient's name or ID, and no UID in a link (it would reach access logs).
    assert PATIENT_NAME.split("^")[0] not in listed.text and PATIENT_ID not in listed.text
    assert uid(STUDY) not in listed.text
    study_id = int(re.search(r'href="/assign/(\d+)"', row).group(1))

    form = client.get(f"/assign/{study_id}", params={"project": "ALPHA"})
    assert form.status_code == 200
    assert '<option value="TP-0001"' in form.text  # existing participants offered
    assert '<option value="followup"' in form.text
    # A new ID is checked against the project's pattern; the study keeps waiting.
    bad = client.post(f"/assign/{study_id}", data={
        "csrf_token": csrf, "project": "ALPHA", "participant": "", "new_participant": "Ola N",
        "event": "baseline"})
    assert bad.status_code == 422
    assert "does not match the project&#39;s participant pattern" in bad.text
    assert "Ola N" not in bad.text
    assert Quarantine(web_world.inst).entries(["complete"])
    # Not a project dana may assign to: as if it did not exist.
    assert client.post(f"/assign/{study_id}", data={
        "csrf_token": csrf, "project": "BRAVO", "participant": "", "new_participant": "TP-0005",
        "event": "baseline"}).status_code == 404

    done = client.post(f"/assign/{study_id}", data={
        "csrf_token": csrf, "project": "ALPHA", "participant": "", "new_participant": "TP-0005",
        "event": "followup"})
    assert done.status_code == 303
    after = client.get(done.headers["location"])
    assert "assigned to ALPHA TP-0005 followup: 4 imported, 0 not imported" in after.text
    with web_world.inst.db.session() as session:
        events = session.scalars(select(Study.event).join(Participant).where(
            Participant.research_id == "TP-0005")).all()
        audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "assign")
                                .order_by(AuditEvent.id.desc())).first()
    assert events == ["followup"]
    assert audit.actor == "dana" and audit.details["reason"] == "user"
    assert "MRI-3" not in after.text  # assigned: no longer waiting

    # An existing participant is chosen from the list.
    more = write_study(tmp_path / "more", study=STUDY + 1, series=1, per_series=1)
    assert storescu(gateway.port, *more, calling="MRI-3").returncode == 0
    assert Quarantine(web_world.inst).wait_until_complete(uid(STUDY + 1), 30) == "complete"
    second = Quarantine(web_world.inst).study_id(uid(STUDY + 1))
    assert client.post(f"/assign/{second}", data={
        "csrf_token": csrf, "project": "ALPHA", "participant": "TP-0005",
        "new_participant": "", "event": "baseline"}).status_code == 303
    with web_world.inst.db.session() as session:
        assert sorted(session.scalars(select(Study.event).join(Participant).where(
            Participant.research_id == "TP-0005")).all()) == ["baseline", "followup"]


def test_coupling_list_upload_on_the_assign_page(web_world: World):
    client, csrf = web_world.login("dana")
    header = "accession_number,project,participant,event\n"

    def upload(text: str):  # type: ignore[no-untyped-def]
        return client.post("/coupling-lists", data={"csrf_token": csrf},
                           files={"coupling_list": ("list.csv", text.encode(), "text/csv")})

    refused = upload(header + "A-1,ALPHA,TP-0011,baseline\nA-2,BRAVO,TP-0012,baseline\n")
    assert refused.status_code == 422
    assert "list.csv line 3: no project &#39;BRAVO&#39;" in refused.text
    by_api = web_world.client().post(
        "/api/coupling-lists", headers={"Authorization": f"Bearer {web_world.tokens['dana']}"},
        content=(header + "A-1,ALPHA,TP-0011,baseline\nA-2,BRAVO,TP-0012,baseline\n").encode())
    assert by_api.status_code == 422
    assert by_api.json()["problems"] == ["coupling list line 3: no project 'BRAVO'"]
    secret = web_world.settings.installation_secret
    with web_world.inst.db.session() as session:  # all or nothing
        assert session.get(CouplingEntry, accession_key(secret, "A-1")) is None
    stored = upload(header + "A-1,ALPHA,TP-0011,baseline\nA-2,ALPHA,TP-0012,followup\n")
    assert stored.status_code == 303
    assert "stored 2 coupling entries" in client.get(stored.headers["location"]).text
    # A member assigns nothing: no Assign link, and 403 from the page.
    mike, _ = web_world.login("mike")
    assert 'href="/assign"' not in mike.get("/projects").text
    assert mike.get("/assign").status_code == 403
    assert 'href="/assign"' in client.get("/projects").text


def test_assign_through_the_api(web_world: World):
    study_id = quarantined_study(web_world, study=41)
    client = web_world.client()
    olivia = {"Authorization": f"Bearer {web_world.tokens['olivia']}"}
    listed = client.get("/api/quarantine", headers=olivia).json()
    entry = next(e for e in listed if e["id"] == study_id)
    assert entry["images"] == 2 and entry["calling_ae"] == "SCANNER"
    assert "Testesen" not in str(listed)
    bad = client.post(f"/api/quarantine/{study_id}/assign", headers=olivia,
                      json={"project": "ALPHA", "participant": "X1", "event": "baseline"})
    assert bad.status_code == 422 and "pattern" in bad.json()["detail"]
    done = client.post(f"/api/quarantine/{study_id}/assign", headers=olivia,
                       json={"project": "ALPHA", "participant": "TP-0041", "event": "baseline"})
    assert done.json() == {"state": "assigned", "note": "", "imported": 2, "rejected": 0}
    # Assigned elsewhere afterwards: refused, whoever asks.
    again = client.post(f"/api/quarantine/{study_id}/assign", headers=olivia,
                        json={"project": "ALPHA", "participant": "TP-0042", "event": "baseline"})
    assert again.status_code == 409
    stored = client.post("/api/coupling-lists", headers=olivia,
                         content=b"accession_number,project,participant,event\n"
                                 b"B-1,ALPHA,TP-0043,followup\n")
    assert stored.json() == {"stored": 1}


def test_a_coupling_list_cannot_take_over_another_projects_entry(web_world: World):
    """Entries are keyed by accession number alone: a data-manager of ALPHA listing BRAVO's
    accession number would route BRAVO's study into ALPHA on arrival."""
    client = web_world.client()
    bravo = client.post("/api/coupling-lists", headers=_bearer(web_world, "bob"),
                        content=(HEADER + "HIJACK-1,BRAVO,TP-0100,baseline\n").encode())
    assert bravo.status_code == 200, bravo.text
    taken = client.post("/api/coupling-lists", headers=_bearer(web_world, "dana"),
                        content=(HEADER + "FREE-1,ALPHA,TP-0101,baseline\n"
                                 "HIJACK-1,ALPHA,TP-0100,baseline\n").encode())
    assert taken.status_code == 409, taken.text
    # The line and the reason; never the name of a project dana is not in.
    assert taken.json()["problems"] == [
        "coupling list line 3: this accession number is listed for another project until "
        "its entry expires; one accession number cannot be listed for two projects"]
    assert "BRAVO" not in taken.text
    # The page says the same, and stores nothing either.
    page, csrf = web_world.login("dana")
    answer = page.post("/coupling-lists", data={"csrf_token": csrf}, files={
        "coupling_list": ("l.csv", (HEADER + "HIJACK-1,ALPHA,TP-0100,baseline\n").encode(),
                          "text/csv")})
    assert answer.status_code == 409
    assert "l.csv line 2: this accession number is listed for another project" in answer.text
    assert "BRAVO" not in answer.text.split("<h2>")[0].split("</h1>")[1]
    secret = web_world.settings.installation_secret
    with web_world.inst.db.session() as session:
        entry = session.get(CouplingEntry, accession_key(secret, "HIJACK-1"))
        bravo_id = session.scalar(select(Project.id).where(Project.acronym == "BRAVO"))
        assert session.get(CouplingEntry, accession_key(secret, "FREE-1")) is None
    assert (entry.project_id, entry.participant) == (bravo_id, "TP-0100")
    # Within its own project an entry is replaced, and the replacement audited.
    again = client.post("/api/coupling-lists", headers=_bearer(web_world, "bob"),
                        content=(HEADER + "HIJACK-1,BRAVO,TP-0102,followup\n").encode())
    assert again.status_code == 200, again.text
    replaced = audit_events(web_world.inst, AuditQuery(action="coupling.replace",
                                                   project_id=bravo_id))
    assert [(e["actor"], e["count"]) for e in replaced] == [("bob", 1)]
    # An expired entry is no one's: another project may list the accession number.
    with web_world.inst.db.session() as session:
        session.execute(update(CouplingEntry)
                        .where(CouplingEntry.accession_key == accession_key(secret, "HIJACK-1"))
                        .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)))
    assert client.post("/api/coupling-lists", headers=_bearer(web_world, "dana"),
                       content=(HEADER + "HIJACK-1,ALPHA,TP-0100,baseline\n").encode()
                       ).status_code == 200


def test_a_coupling_list_with_a_huge_field_is_refused_not_a_crash(web_world: World):
    page, csrf = web_world.login("dana")
    quiet = _quiet_client(web_world)
    quiet.cookies = page.cookies
    body = HEADER + "X-1,ALPHA,TP-0001,baseline\n" + "X-2,ALPHA,TP-0001," + "b" * 200_000
    answer = quiet.post("/coupling-lists", data={"csrf_token": csrf},
                        files={"coupling_list": ("l.csv", body.encode(), "text/csv")})
    assert answer.status_code == 422, answer.status_code
    assert "l.csv line 3: not valid CSV (field larger than field limit" in answer.text
    api = _quiet_client(web_world).post("/api/coupling-lists", headers=_bearer(web_world, "dana"),
                                    content=body.encode())
    assert api.status_code == 422, api.status_code
    assert api.json()["problems"][0].startswith("coupling list line 3: not valid CSV")


def test_the_coupling_list_api_has_the_pages_size_limit(web_world: World):
    body = (HEADER + "\n" * (6 * 2**20)).encode()  # 6 MB of blank lines: nothing to store
    answer = web_world.client().post("/api/coupling-lists", headers=_bearer(web_world, "dana"),
                                 content=body)
    assert answer.status_code == 413, answer.text
    assert answer.json()["detail"] == ("the coupling list is larger than 5 MB, the limit "
                                       "of this server")


def test_a_data_manager_cannot_assign_into_a_project_they_are_not_in(web_world: World):
    study = quarantined_study(web_world, study=61)
    client = web_world.client()
    for project in ("BRAVO", "bravo", "NOSUCH"):
        answer = client.post(f"/api/quarantine/{study}/assign", headers=_bearer(web_world, "dana"),
                             json={"project": project, "participant": "TP-0061",
                                   "event": "baseline"})
        assert answer.status_code == 404, answer.text
    page, csrf = web_world.login("dana")
    assert page.post(f"/assign/{study}", data={
        "csrf_token": csrf, "project": "BRAVO", "participant": "", "new_participant": "TP-0061",
        "event": "baseline"}).status_code == 404
    assert page.get(f"/assign/{study}", params={"project": "BRAVO"}).status_code == 404
    assert Quarantine(web_world.inst).entries(["receiving", "complete"])


def test_a_study_assigned_to_another_project_does_not_exist_for_an_outsider(web_world: World):
    """On the page and through the API, a study of BRAVO answers dana (ALPHA) as a number
    that was never used: no acronym, research ID or event, and no 409 that says it is
    assigned."""
    study = quarantined_study(web_world, study=62)
    assign_study(web_world.inst, Quarantine(web_world.inst).study_uid(study), "BRAVO", "TP-0062",
                 "baseline", actor="bob", workers=1)
    missing = 10_000_000
    page, csrf = web_world.login("dana")
    answer = page.get(f"/assign/{study}")
    assert answer.status_code == 404
    assert "BRAVO" not in answer.text and "TP-0062" not in answer.text
    # The same page as for a number never used, but for the number itself (and not its
    # digits elsewhere: study 4 is in "404"). A small number may also stand elsewhere in
    # any page ("initial-scale=1"): it is replaced in both alike.
    def numbered(text: str) -> str:
        return re.sub(rf"\b({study}|{missing})\b", "N", text)

    assert numbered(answer.text) == numbered(page.get(f"/assign/{missing}").text)
    form = {"csrf_token": csrf, "project": "ALPHA", "participant": "",
            "new_participant": "TP-0063", "event": "baseline"}
    assert page.post(f"/assign/{study}", data=form).status_code == 404
    client = web_world.client()
    body = {"project": "ALPHA", "participant": "TP-0063", "event": "baseline"}
    for number in (study, missing):
        api = client.post(f"/api/quarantine/{number}/assign", headers=_bearer(web_world, "dana"),
                          json=body)
        assert api.status_code == 404, api.text
        assert api.json()["detail"] == f"no study {number} in the quarantine"
    assert study not in [e["id"] for e in client.get(
        "/api/quarantine", headers=_bearer(web_world, "dana")).json()]
    # BRAVO's own data-manager sees it, and a different assignment is a conflict for them.
    assert "TP-0062" in web_world.login("bob")[0].get(f"/assign/{study}").text
    again = client.post(f"/api/quarantine/{study}/assign", headers=_bearer(web_world, "bob"),
                        json={"project": "BRAVO", "participant": "TP-0064",
                              "event": "baseline"})
    assert again.status_code == 409
    # So is it on the command line (research IT sees every project), as before.
    with pytest.raises(ConflictError, match="already assigned to another project"):
        assign_study(web_world.inst, Quarantine(web_world.inst).study_uid(study), "ALPHA",
                     "TP-0063", "baseline", workers=1)
    with web_world.inst.db.session() as session:
        assert session.scalar(select(Project.acronym).join(
            QuarantineStudy, QuarantineStudy.project_id == Project.id).where(
            QuarantineStudy.id == study)) == "BRAVO"


def test_the_quarantine_list_never_shows_the_patients_name_or_id(web_world: World):
    quarantined_study(web_world, study=64)
    page, _ = web_world.login("dana")
    html = page.get("/assign").text
    listed = web_world.client().get("/api/quarantine", headers=_bearer(web_world, "dana")).text
    for text in (html, listed):
        for value in (PATIENT_NAME.split("^")[0], "Magnus", "PAT-77", PATIENT_ID, BIRTH_DATE):
            assert value not in text
        assert "MR CEREBRUM ***" in text  # the description, cleaned of the birth date


def test_the_quarantine_api_lists_what_the_page_shows_and_no_uid(web_world: World):
    """The study is named by its number; its original UID stays on the server (the CLI's
    rpacs quarantine list shows it to research IT)."""
    study = quarantined_study(web_world, study=65)
    listed = web_world.client().get("/api/quarantine", headers=_bearer(web_world, "dana")).json()
    entry = next(e for e in listed if e["id"] == study)
    assert uid(65) not in json.dumps(listed)
    assert set(entry) == {"id", "state", "note", "last_arrival", "study_date", "modalities",
                          "description", "series", "images", "accession_number",
                          "calling_ae", "called_ae"}
    assert uid(65) not in web_world.login("dana")[0].get(f"/assign/{study}").text


def test_errors_do_not_echo_what_may_be_a_patients_id(web_world: World):
    study = quarantined_study(web_world, study=68)
    client = web_world.client()
    dana = _bearer(web_world, "dana")
    answer = client.post(f"/api/quarantine/{study}/assign", headers=dana,
                         json={"project": "ALPHA", "participant": PATIENT_ID,
                               "event": "baseline"})
    assert answer.status_code == 422 and PATIENT_ID not in answer.text
    coupled = client.post("/api/coupling-lists", headers=dana,
                          content=(HEADER + f"E-1,ALPHA,{PATIENT_ID},baseline\n").encode())
    assert coupled.status_code == 422 and PATIENT_ID not in coupled.text
    page, csrf = web_world.login("dana")
    form = page.post(f"/assign/{study}", data={
        "csrf_token": csrf, "project": "ALPHA", "participant": "",
        "new_participant": PATIENT_NAME, "event": "baseline"})
    assert form.status_code == 422 and "Testesen" not in form.text
    # A validation error names the field, never the value sent.
    bad = client.post(f"/api/quarantine/{study}/assign", headers=dana,
                      json={"project": "ALPHA", "participant": PATIENT_ID * 10,
                            "event": "baseline"})
    assert bad.status_code == 422 and PATIENT_ID not in bad.text


def test_of_two_assignments_decided_at_once_the_second_is_refused(web_world: World):
    """Two data managers open the same waiting study and both confirm: both looked before
    either wrote, so only the write itself can tell. The first assignment stands; the
    second is a conflict, audited nowhere, and imports nothing."""
    study = quarantined_study(web_world, study=66)
    with web_world.inst.db.session() as session:
        alpha, bravo = (session.scalar(select(Project.id).where(Project.acronym == a))
                        for a in ("ALPHA", "BRAVO"))
    first = Assignment(alpha, "TP-0066", "baseline", Reason.USER, "dana")
    second = Assignment(bravo, "TP-0067", "baseline", Reason.USER, "bob")
    apply_assignment(web_world.inst, study, first, actor="dana", workers=1)
    with pytest.raises(ConflictError, match="meanwhile"):
        apply_assignment(web_world.inst, study, second, actor="bob", workers=1)
    with web_world.inst.db.session() as session:
        row = session.get(QuarantineStudy, study)
        assert (row.project_id, row.participant) == (alpha, "TP-0066")
        assigns = session.scalars(select(AuditEvent.project_id).where(
            AuditEvent.action == "assign",
            AuditEvent.details["quarantine_study"].as_integer() == study)).all()
        assert assigns == [alpha]
    # The same assignment again is no conflict (late arrivals follow it).
    apply_assignment(web_world.inst, study, first, actor="dana", workers=1)


def test_a_withdrawal_is_told_to_no_other_project(web_world: World):
    """A patient who withdrew from BRAVO: their study waiting in the quarantine stays
    waiting (it may be meant for ALPHA), and once BRAVO's data manager assigns it there and
    it is refused, it is BRAVO's: ALPHA's data manager no longer sees it, nor why."""
    first = quarantined_study(web_world, study=68)
    assign_study(web_world.inst, Quarantine(web_world.inst).study_uid(first), "BRAVO",
                 "TP-0068", "baseline", actor="bob", workers=1)
    withdraw_participant(web_world.inst, "BRAVO", "TP-0068", actor="bob")
    later = quarantined_study(web_world, study=69)  # the same original patient
    dana = web_world.client()

    def listed_for_dana() -> list[dict[str, object]]:
        return dana.get("/api/quarantine", headers=_bearer(web_world, "dana")).json()

    waiting = [e for e in listed_for_dana() if e["id"] == later]
    assert len(waiting) == 1 and waiting[0]["state"] != "refused"
    refused = web_world.client().post(
        f"/api/quarantine/{later}/assign", headers=_bearer(web_world, "bob"),
        json={"project": "BRAVO", "participant": "TP-0069", "event": "baseline"})
    assert refused.status_code == 200 and refused.json()["state"] == "refused"
    assert later not in [e["id"] for e in listed_for_dana()]
    assert all("withdrew" not in str(e["note"]) for e in listed_for_dana())
    page, _ = web_world.login("dana")
    assert page.get(f"/assign/{later}").status_code == 404
    bob = [e for e in web_world.client().get(
        "/api/quarantine", headers=_bearer(web_world, "bob")).json() if e["id"] == later]
    assert "withdrew" in bob[0]["note"]
