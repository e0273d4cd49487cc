"""The DICOM gateway end to end, with DCMTK's tools as the independent clients."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from sqlalchemy import func, select

from rpacs.db import AuditEvent, Instance, Study, TagInventory
from rpacs.installation import Installation
from rpacs.net import Gateway, GatewayConfig, start_gateway
from rpacs.quarantine import Quarantine

from .dicom_factory import PATIENT_ID, PATIENT_NAME, uid, write_study
from .gateway_support import DCMTK_ENV, dcmtk, free_port, storescu, wait_for

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None,
                                reason="DCMTK is not installed (make test installs it)")

TIMEOUT = 0.3


@pytest.fixture
def gateway(installation: Installation) -> Iterator[Gateway]:
    gw = start_gateway(installation, GatewayConfig(
        ae_title="RPACS", host="127.0.0.1", port=0, study_timeout=TIMEOUT,
        monitor_interval=0.05))
    yield gw
    gw.stop()


def state_of(inst: Installation, study: int = 1, expect: str = "complete") -> str:
    """The study's state once it is ``expect`` (or whatever it is after 30 s)."""
    def current() -> str:
        states = [e.state for e in Quarantine(inst).entries() if e.study_uid == uid(study)]
        return states[0] if states else ""

    wait_for(lambda: current() == expect, timeout=30)
    # "complete" may be the moment between closing and routing: let the routing finish.
    if expect == "complete":
        wait_for(lambda: False, timeout=4 * TIMEOUT)
    return current()


def entry(inst: Installation, study: int = 1) -> Any:
    return next(e for e in Quarantine(inst).entries() if e.study_uid == uid(study))


def archive_count(inst: Installation) -> int:
    with inst.db.session() as session:
        return session.scalar(select(func.count()).select_from(Instance)) or 0


def test_echo(gateway: Gateway) -> None:
    result = dcmtk("echoscu", "-aec", "RPACS", "127.0.0.1", str(gateway.port))
    assert result.returncode == 0, result.stderr


def test_received_study_waits_in_the_quarantine_readable_only_by_the_service(
        gateway: Gateway, installation: Installation, tmp_path: Path,
        rpacs: Callable[..., Any]) -> None:
    files = write_study(tmp_path / "in", series=2, per_series=3)
    assert storescu(gateway.port, tmp_path / "in").returncode == 0
    assert state_of(installation) == "complete"
    listed = entry(installation)
    assert (listed.series, listed.images, listed.modalities) == (2, 6, "MR")
    assert listed.calling_ae == "SENDER" and listed.called_ae == "RPACS"
    out = rpacs("quarantine", "list", "--json")
    assert out.exit_code == 0
    shown = json.loads(out.output)
    assert shown[0]["images"] == 6 and shown[0]["accession_number"]
    # The command line is research IT's, on the server: rpacs assign names a study by it.
    assert shown[0]["study_uid"] == uid(1)
    for planted in ("Testesen", PATIENT_ID):
        assert planted not in out.output
    root = installation.settings.quarantine_dir
    stored = sorted(root.rglob("*.dcm"))
    assert len(stored) == 6
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in stored)
    assert all(stat.S_IMODE(p.parent.stat().st_mode) == 0o700 for p in stored)
    # Stored as sent: the data set bytes of every original are in the quarantine unchanged.
    originals = {dcmread(f).SOPInstanceUID: f.read_bytes() for f in files}
    for path in stored:
        ds = dcmread(path)
        body = originals[ds.SOPInstanceUID]
        assert path.read_bytes().endswith(body[body.index(b"\x08\x00\x05\x00")
                                               if b"\x08\x00\x05\x00" in body else -1000:])
        assert ds.PatientName == PATIENT_NAME  # the quarantine holds originals by design
    # File names say nothing about the patient or the study.
    assert not any(uid(1) in str(p) for p in stored)


def test_end_to_end_assign_find_and_move_to_storescp(
        gateway: Gateway, installation: Installation, make_project: Callable[..., Any],
        tmp_path: Path, rpacs: Callable[..., Any]) -> None:
    make_project()
    write_study(tmp_path / "in", series=2, per_series=3)
    assert storescu(gateway.port, tmp_path / "in").returncode == 0
    assert state_of(installation) == "complete"
    result = rpacs("assign", uid(1), "--project", "TESTPROJ", "--participant", "TP-0001",
                   "--event", "baseline")
    assert result.exit_code == 0, result.output
    assert "6 imported" in result.output
    assert archive_count(installation) == 6
    assert not list(installation.settings.quarantine_dir.rglob("*.dcm"))  # originals gone
    with installation.db.session() as session:
        audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "assign")).one()
    assert audit.details["reason"] == "user"

    # A viewer registered for the project finds the study (de-identified values only)...
    dest_port = free_port()
    rpacs("remote", "add", "TESTPROJ", "VIEWER", "127.0.0.1", str(dest_port))
    found = dcmtk("findscu", "-S", "-aet", "VIEWER", "-aec", "RPACS", "-k",
                  "QueryRetrieveLevel=STUDY", "-k", "PatientID=TP-0001", "-k",
                  "StudyInstanceUID", "-k", "NumberOfStudyRelatedInstances", "-k",
                  "ModalitiesInStudy", "127.0.0.1", str(gateway.port))
    assert found.returncode == 0, found.stderr
    assert re.search(r"IS \[6 ?\] .*NumberOfStudyRelatedInstances", found.stderr)
    assert "Testesen" not in found.stderr and PATIENT_ID not in found.stderr
    with installation.db.session() as session:
        study_uid = session.scalars(select(Study.study_uid)).one()
    # ... and moves it to a DCMTK storescp, which receives exactly the archive's data.
    received = tmp_path / "received"
    received.mkdir()
    scp = subprocess.Popen(["storescp", "-aet", "VIEWER", "-od", str(received),
                            str(dest_port)], env=DCMTK_ENV, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: dcmtk("echoscu", "127.0.0.1", str(dest_port)).returncode == 0)
        moved = dcmtk("movescu", "-S", "-aet", "VIEWER", "-aem", "VIEWER", "-aec", "RPACS",
                      "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
                      "127.0.0.1", str(gateway.port))
        assert moved.returncode == 0, moved.stderr
        wait_for(lambda: len(list(received.iterdir())) == 6, timeout=10)
    finally:
        scp.terminate()
        scp.wait()
    archive = {dcmread(p).SOPInstanceUID: dcmread(p)
               for p in (installation.settings.store_dir / "TESTPROJ").rglob("*.dcm")}
    got = [dcmread(p) for p in received.iterdir()]
    assert len(got) == 6
    for ds in got:
        assert ds == archive[ds.SOPInstanceUID]  # every element equal, pixel data included


def test_get_and_unknown_ae_gets_nothing(gateway: Gateway, installation: Installation,
                                         make_project: Callable[..., Any], tmp_path: Path,
                                         rpacs: Callable[..., Any]) -> None:
    make_project()
    write_study(tmp_path / "in", series=1, per_series=2)
    storescu(gateway.port, tmp_path / "in")
    assert state_of(installation) == "complete"
    rpacs("assign", uid(1), "--project", "TESTPROJ", "--participant", "TP-0002",
          "--event", "baseline")
    rpacs("remote", "add", "TESTPROJ", "WORKSTN", "127.0.0.1", "104")
    query = ["-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=TP-0002"]
    stranger = dcmtk("findscu", "-P", "-aet", "STRANGER", "-aec", "RPACS", *query,
                     "127.0.0.1", str(gateway.port))
    assert "TP-0002" not in stranger.stderr
    out = tmp_path / "got"
    out.mkdir()
    got = dcmtk("getscu", "-P", "-aet", "STRANGER", "-aec", "RPACS", "-od", str(out), *query,
                "127.0.0.1", str(gateway.port))
    assert not list(out.iterdir()), got.stderr
    got = dcmtk("getscu", "-P", "-aet", "WORKSTN", "-aec", "RPACS", "-od", str(out), *query,
                "127.0.0.1", str(gateway.port))
    assert got.returncode == 0, got.stderr
    assert len(list(out.iterdir())) == 2
    # A second project's remote does not see this project's data.
    make_project(acronym="OTHERPROJ")
    rpacs("remote", "add", "OTHERPROJ", "OTHERWS", "127.0.0.1", "104")
    other = dcmtk("findscu", "-P", "-aet", "OTHERWS", "-aec", "RPACS", *query,
                  "127.0.0.1", str(gateway.port))
    assert "TP-0002" not in other.stderr


def test_routing_rule_assigns_with_patient_id_as_participant(
        gateway: Gateway, installation: Installation, make_project: Callable[..., Any],
        tmp_path: Path, rpacs: Callable[..., Any]) -> None:
    make_project()
    assert rpacs("route", "add", "--project", "TESTPROJ", "--event", "followup",
                 "--calling-ae", "TRUSTED", "--patient-id-regex", r"TP-\d+").exit_code == 0
    write_study(tmp_path / "a", study=1, series=1, per_series=2, patient_id="TP-0042")
    write_study(tmp_path / "b", study=2, series=1, per_series=2, patient_id="TP-0043")
    write_study(tmp_path / "c", study=3, series=1, per_series=2, patient_id="TP-00444")
    storescu(gateway.port, tmp_path / "a", calling="TRUSTED")
    storescu(gateway.port, tmp_path / "b", calling="UNTRUSTED")
    storescu(gateway.port, tmp_path / "c", calling="TRUSTED")  # matches, but not the pattern
    assert state_of(installation, 1, "assigned") == "assigned"
    assert (entry(installation, 1).participant, entry(installation, 1).event) == (
        "TP-0042", "followup")
    assert state_of(installation, 2) == "complete"
    assert state_of(installation, 3) == "complete"
    assert "pattern" in entry(installation, 3).note
    with installation.db.session() as session:
        audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "assign")).one()
    assert audit.details["reason"] == "rule" and audit.details["rule"] == "1"
    listed = rpacs("route", "list", "--json")
    assert json.loads(listed.output)[0]["calling_ae"] == "TRUSTED"


def test_coupling_list_assigns_on_arrival(
        gateway: Gateway, installation: Installation, make_project: Callable[..., Any],
        tmp_path: Path, rpacs: Callable[..., Any]) -> None:
    make_project()
    bad = tmp_path / "bad.csv"
    bad.write_text("accession_number,project,participant,event\n"
                   "ACC20230517X,TESTPROJ,nope,baseline\nX1,NOSUCH,TP-0001,baseline\n")
    refused = rpacs("coupling", "upload", str(bad))
    assert refused.exit_code == 2
    assert "line 2" in refused.output and "line 3" in refused.output
    good = tmp_path / "good.csv"
    good.write_text("accession_number,project,participant,event\n"
                    "ACC20230517X,TESTPROJ,TP-0007,followup\n")
    assert rpacs("coupling", "upload", str(good)).exit_code == 0
    write_study(tmp_path / "in", series=1, per_series=3)
    storescu(gateway.port, tmp_path / "in")
    assert state_of(installation, 1, "assigned") == "assigned"
    assert entry(installation).participant == "TP-0007"
    assert entry(installation).assigned_by == "coupling-list"
    assert wait_for(lambda: archive_count(installation) == 3)


def test_coupling_entries_expire(installation: Installation,
                                 make_project: Callable[..., Any]) -> None:
    import datetime as dt

    from rpacs.routing import coupling_entry, upload_coupling_list

    make_project()
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=15)
    upload_coupling_list(installation, "accession_number,project,participant,event\n"
                         "A1,TESTPROJ,TP-0001,baseline\n", now=long_ago)
    assert coupling_entry(installation, "A1") is None
    upload_coupling_list(installation, "accession_number,project,participant,event\n"
                         "A1,TESTPROJ,TP-0001,baseline\n")
    assert coupling_entry(installation, "A1") is not None


def test_a_coupling_list_cannot_list_another_projects_accession_number(
        installation: Installation, make_project: Callable[..., Any], tmp_path: Path,
        rpacs: Callable[..., Any]) -> None:
    from rpacs.routing import coupling_entry

    testproj = make_project()
    make_project(acronym="OTHERPROJ")
    first = tmp_path / "first.csv"
    first.write_text("accession_number,project,participant,event\n"
                     "C-1,TESTPROJ,TP-0001,baseline\n")
    assert rpacs("coupling", "upload", str(first)).exit_code == 0
    second = tmp_path / "second.csv"
    second.write_text("accession_number,project,participant,event\n"
                      "C-2,OTHERPROJ,TP-0002,baseline\nC-1,OTHERPROJ,TP-0001,baseline\n")
    refused = rpacs("coupling", "upload", str(second))
    # The command line is research IT's, on the server: the other project is named.
    assert refused.exit_code == 2
    assert refused.output == ("error: second.csv line 3: this accession number is listed for "
                              "project TESTPROJ until its entry expires; one accession "
                              "number cannot be listed for two projects\n")
    assert coupling_entry(installation, "C-2") is None  # nothing stored
    # A bad line beside a conflicting one: every problem, in line order.
    second.write_text("accession_number,project,participant,event\n"
                      "C-1,OTHERPROJ,TP-0001,baseline\nC-3,OTHERPROJ,nope,baseline\n")
    both = rpacs("coupling", "upload", str(second))
    assert both.exit_code == 2
    assert [line.split(": ")[1] for line in both.output.splitlines()] == [
        "second.csv line 2", "second.csv line 3"]
    huge = tmp_path / "huge.csv"
    huge.write_text("accession_number,project,participant,event\n"
                    "C-4,TESTPROJ,TP-0001,baseline\n\nC-5,TESTPROJ," + "x" * 200_000 + "\n")
    crashed = rpacs("coupling", "upload", str(huge))
    assert crashed.exit_code == 2
    assert crashed.output.startswith("error: huge.csv line 4: not valid CSV (field larger")
    assert coupling_entry(installation, "C-1").project_id == testproj.id


def test_auto_id_gives_the_same_patient_the_same_random_id(
        gateway: Gateway, installation: Installation, make_project: Callable[..., Any],
        tmp_path: Path, rpacs: Callable[..., Any]) -> None:
    make_project(participant_pattern=r"TP-\d{4}")
    make_project(acronym="FREEFORM", participant_pattern=r"P\d+")
    assert rpacs("project", "auto-id", "FREEFORM", "--ae-title", "FREE").exit_code == 2
    assert rpacs("project", "auto-id", "TESTPROJ", "--ae-title", "AUTO_TP").exit_code == 0
    write_study(tmp_path / "a", study=1, series=1, per_series=1, patient_id="HOSP-1")
    write_study(tmp_path / "b", study=2, series=1, per_series=1, patient_id="HOSP-1")
    write_study(tmp_path / "c", study=3, series=1, per_series=1, patient_id="HOSP-2")
    write_study(tmp_path / "d", study=4, series=1, per_series=1, patient_id="HOSP-3")
    for name in "abc":
        storescu(gateway.port, tmp_path / name, called="AUTO_TP")
    storescu(gateway.port, tmp_path / "d", called="RPACS")  # not the auto-ID AE title
    for study in (1, 2, 3):
        assert state_of(installation, study, "assigned") == "assigned"
    assert state_of(installation, 4) == "complete"
    ids = [entry(installation, s).participant for s in (1, 2, 3)]
    assert ids[0] == ids[1] != ids[2]
    assert all(i and i.startswith("TP-") and len(i) == 7 for i in ids)
    db_text = (installation.settings.home / "rpacs.sqlite3").read_bytes()
    assert b"HOSP-1" not in db_text and b"HOSP-2" not in db_text


def test_late_arrivals_follow_their_study(
        gateway: Gateway, installation: Installation, make_project: Callable[..., Any],
        tmp_path: Path, rpacs: Callable[..., Any]) -> None:
    make_project()
    files = write_study(tmp_path / "in", series=2, per_series=2)
    storescu(gateway.port, *files[:2])
    assert state_of(installation) == "complete"
    rpacs("assign", uid(1), "--project", "TESTPROJ", "--participant", "TP-0003",
          "--event", "baseline")
    assert archive_count(installation) == 2
    storescu(gateway.port, *files[2:])
    assert wait_for(lambda: archive_count(installation) == 4)
    assert entry(installation).state == "assigned"


def test_withdrawal_deletes_the_studies_and_refuses_the_patient(
        gateway: Gateway, installation: Installation, make_project: Callable[..., Any],
        tmp_path: Path, rpacs: Callable[..., Any]) -> None:
    make_project()
    write_study(tmp_path / "keep", study=1, series=1, per_series=2, patient_id="KEEP-1")
    write_study(tmp_path / "go", study=2, series=2, per_series=2)
    for name, participant, study in (("keep", "TP-0001", 1), ("go", "TP-0002", 2)):
        storescu(gateway.port, tmp_path / name)
        assert state_of(installation, study) == "complete"
        rpacs("assign", uid(study), "--project", "TESTPROJ", "--participant", participant,
              "--event", "baseline")
    with installation.db.session() as session:
        inventory_before = session.scalar(select(func.sum(TagInventory.n_instances)))
    result = rpacs("participant", "withdraw", "TESTPROJ", "TP-0002", "--yes")
    assert result.exit_code == 0, result.output
    assert "later studies of the same patient will be refused" in result.output
    again = rpacs("participant", "withdraw", "TESTPROJ", "TP-0002", "--yes")
    assert again.exit_code == 0 and "refusals recorded then stand" in again.output
    assert archive_count(installation) == 2
    stored = list((installation.settings.store_dir / "TESTPROJ").rglob("*.dcm"))
    assert len(stored) == 2
    with installation.db.session() as session:
        inventory_after = session.scalar(select(func.sum(TagInventory.n_instances)))
        counts = set(session.scalars(select(TagInventory.n_instances)))
    assert inventory_after < inventory_before and counts <= {2, 1}
    # A later study of the same original patient is refused, by hand too.
    write_study(tmp_path / "again", study=3, series=1, per_series=1)
    storescu(gateway.port, tmp_path / "again")
    assert state_of(installation, 3) == "complete"
    refused = rpacs("assign", uid(3), "--project", "TESTPROJ", "--participant", "TP-0009",
                    "--event", "baseline")
    assert refused.exit_code != 0 and "withdrew" in refused.output
    assert entry(installation, 3).state == "refused"
    assert archive_count(installation) == 2
    # The import from files refuses the patient as well.
    imported = rpacs("import", "--project", "TESTPROJ", "--participant", "TP-0010",
                     "--event", "baseline", str(tmp_path / "again"))
    assert "withdrew" in imported.output
    assert archive_count(installation) == 2


def test_purge_deletes_unassigned_studies_after_retention(
        gateway: Gateway, installation: Installation, tmp_path: Path,
        rpacs: Callable[..., Any]) -> None:
    write_study(tmp_path / "in", series=1, per_series=2)
    storescu(gateway.port, tmp_path / "in")
    assert state_of(installation) == "complete"
    assert "purged 0" in rpacs("quarantine", "purge").output
    assert "purged 1 study (2 files)" in rpacs("quarantine", "purge", "--days", "0").output
    assert Quarantine(installation).entries() == []
    assert not list(installation.settings.quarantine_dir.rglob("*.dcm"))
