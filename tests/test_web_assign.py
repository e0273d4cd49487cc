"""The Assign page: a study received over DICOM (DCMTK's storescu to the gateway) assigned
through the web app by a data manager, and a coupling list uploaded beside it."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from rpacs.db import AuditEvent, Participant, Study
from rpacs.net import Gateway, GatewayConfig, start_gateway
from rpacs.quarantine import Quarantine

from .dicom_factory import PATIENT_ID, PATIENT_NAME, uid, write_study
from .gateway_support import storescu
from .web_world import World, quarantined_study

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None,
                                reason="DCMTK is not installed (make test installs it)")
STUDY = 31


@pytest.fixture
def gateway(web_world: World) -> Iterator[Gateway]:
    gw = start_gateway(web_world.inst, GatewayConfig(
        ae_title="RPACS", host="127.0.0.1", port=0, study_timeout=0.3, monitor_interval=0.05))
    yield gw
    gw.stop()


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
