"""Import through the service and the command line: outcomes, bad input, PHI, restarts."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from pydicom import dcmread
from sqlalchemy import func, select

from rpacs.db import Instance, Participant, Project, RefusedPatient, StudyPatientKey
from rpacs.ingest import import_paths, patient_key, studies_of_patient
from rpacs.installation import Installation
from rpacs.projects import ProjectSpec, create_project
from rpacs.settings import Settings

from . import dicom_factory as f

ACRONYM = "IMPTEST"


@pytest.fixture
def inst(tmp_path: Path) -> Installation:
    installation = Installation.open(Settings(home=tmp_path / "home"))
    create_project(
        installation,
        ProjectSpec(
            acronym=ACRONYM,
            rek="2023/12345",
            pi_name="Principal Investigator",
            pi_email="pi@example.org",
            start_date="2023-01-01",
            end_date="2027-12-31",
            participant_pattern=r"^IMP-\d{4}$",
            events=["baseline", "followup"],
        ),
    )
    yield installation
    installation.close()


def _import(inst: Installation, *paths: Path, participant: str = "IMP-0001",
            event: str = "baseline", workers: int = 1):
    return import_paths(inst, ACRONYM, participant, event, list(paths), workers=workers)


def _all_bytes_under(folder: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in folder.rglob("*") if p.is_file()]


def test_import_stores_indexes_and_reimport_changes_nothing(inst, tmp_path):
    f.write_study(tmp_path / "in", series=2, per_series=3)
    first = _import(inst, tmp_path / "in", workers=2)
    assert (first.stored, first.present, first.not_dicom, first.rejected) == (6, 0, 0, [])
    assert (first.studies, first.series) == (1, 2)
    stored = sorted(inst.settings.store_dir.rglob("*.dcm"))
    assert len(stored) == 6
    before = {p: p.read_bytes() for p in stored}
    second = _import(inst, tmp_path / "in")
    assert (second.stored, second.present, second.rejected) == (0, 6, [])
    assert {p: p.read_bytes() for p in sorted(inst.settings.store_dir.rglob("*.dcm"))} == before
    ds = dcmread(stored[0])
    assert ds.PatientID == ds.PatientName == "IMP-0001"
    assert ds.InstitutionName == ACRONYM
    assert ds.ReferringPhysicianName == "baseline"
    assert ds.PatientIdentityRemoved == "YES"


def test_nothing_identifying_anywhere_under_home(inst, tmp_path):
    f.write_study(tmp_path / "in", series=2, per_series=2)
    summary = _import(inst, tmp_path / "in", workers=2)
    assert summary.ok
    inst.close()  # flush SQLite's write-ahead log into the database file
    found = [
        (str(path.relative_to(inst.settings.home)), planted.decode())
        for path, data in _all_bytes_under(inst.settings.home)
        for planted in f.PLANTED
        if planted in data
    ]
    assert found == []


def test_uids_and_dates_written_into_text_and_vendor_blobs_are_not_kept(inst, tmp_path):
    """A comment naming its study's UID, a Siemens protocol naming the frame of reference
    by a UID that spells the acquisition's date, and the study's date, unshifted."""
    vendor_uid = "1.3.12.2.1107.5.2.43.67040.1.20210517081023456.0.0.0"
    for n in (1, 2):
        ds = f.mr_dataset(f.Instance(1, 1, n))
        ds.ImageComments = f"derived from study {ds.StudyInstanceUID}"
        ds.add_new(0x00291020, "OB", (b'SV10\x04\x03### ASCCONV BEGIN ###\n'
                                      b'tReferenceImage0 = ""' + vendor_uid.encode() + b'""\n'
                                      b'sStudyDate = ""' + f.STUDY_DATE.encode() + b'""\n'
                                      b"### ASCCONV END ###\x00"))
        f.write(ds, tmp_path / "in" / f"{n}.dcm")
    original_uid = f.mr_dataset(f.Instance(1, 1, 1)).StudyInstanceUID
    assert _import(inst, tmp_path / "in").stored == 2
    inst.close()
    for planted in (original_uid, vendor_uid, f.STUDY_DATE):
        assert not [path for path, data in _all_bytes_under(inst.settings.home)
                    if planted.encode() in data], planted
    stored = dcmread(next(inst.settings.store_dir.rglob("*.dcm")))
    assert stored.ImageComments == "derived from study ***"


def test_pixels_survive_byte_for_byte(inst, tmp_path):
    paths = f.write_study(tmp_path / "in", series=1, per_series=2)
    _import(inst, tmp_path / "in")
    originals = {dcmread(p).SeriesNumber * 100 + dcmread(p).InstanceNumber: dcmread(p).PixelData
                 for p in paths}
    for stored in inst.settings.store_dir.rglob("*.dcm"):
        ds = dcmread(stored)
        assert ds.PixelData == originals[ds.SeriesNumber * 100 + ds.InstanceNumber]


def test_bad_input_is_reported_per_file_and_loses_nothing(inst, tmp_path):
    good = f.write_study(tmp_path / "in", series=1, per_series=2)
    (tmp_path / "in" / "empty.dcm").write_bytes(b"")
    (tmp_path / "in" / "notes.txt").write_text("not dicom at all\n")
    truncated = good[0].read_bytes()
    (tmp_path / "in" / "truncated.dcm").write_bytes(truncated[: len(truncated) // 2])
    no_uid = f.mr_dataset(f.Instance(number=7))
    del no_uid.SOPInstanceUID
    f.write(no_uid, tmp_path / "in" / "no_uid.dcm")
    (tmp_path / "in" / "dangling.dcm").symlink_to(tmp_path / "missing.dcm")
    summary = _import(inst, tmp_path / "in")
    reasons = {Path(r.source).name: r.reason for r in summary.rejected}
    assert summary.stored == 2
    assert summary.not_dicom == 1
    assert set(reasons) == {"empty.dcm", "truncated.dcm", "no_uid.dcm", "dangling.dcm"}
    assert "empty" in reasons["empty.dcm"]
    assert "SOPInstanceUID" in reasons["no_uid.dcm"]
    for reason in reasons.values():
        assert all(p.decode() not in reason for p in f.PLANTED)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_rejected(inst, tmp_path):
    path = f.write(f.mr_dataset(), tmp_path / "in" / "locked.dcm")
    path.chmod(0)
    summary = _import(inst, tmp_path / "in")
    assert [Path(r.source).name for r in summary.rejected] == ["locked.dcm"]
    assert "cannot be read" in summary.rejected[0].reason


def test_duplicate_sop_instance_uid_with_other_content_is_rejected(inst, tmp_path):
    f.write(f.mr_dataset(), tmp_path / "a" / "one.dcm")
    changed = f.mr_dataset()
    changed.SeriesDescription = "a different series description"
    f.write(changed, tmp_path / "b" / "two.dcm")
    assert _import(inst, tmp_path / "a").stored == 1
    stored = next(inst.settings.store_dir.rglob("*.dcm"))
    kept = stored.read_bytes()
    summary = _import(inst, tmp_path / "b")
    assert summary.stored == 0
    assert len(summary.rejected) == 1
    assert "different content" in summary.rejected[0].reason
    assert stored.read_bytes() == kept


def test_study_cannot_change_participant(inst, tmp_path):
    paths = f.write_study(tmp_path / "in", series=2, per_series=2)
    _import(inst, paths[0])
    summary = _import(inst, paths[1], participant="IMP-0002")
    assert summary.stored == 0 and len(summary.rejected) == 1
    assert "another participant" in summary.rejected[0].reason
    with inst.db.session() as session:  # and no participant with nothing stored
        assert set(session.scalars(select(Participant.research_id))) == {"IMP-0001"}
    # The second series at the wrong event: refused, and nothing of it left in the store
    # (its files blocked the right import, and a withdrawal never found them).
    summary = _import(inst, *paths[2:], event="followup")
    assert summary.stored == 0 and len(summary.rejected) == 2
    with inst.db.session() as session:
        indexed = set(session.scalars(select(Instance.path)))
    assert {p.relative_to(inst.settings.store_dir).as_posix()
            for p in inst.settings.store_dir.rglob("*.dcm")} == indexed
    assert _import(inst, *paths[1:]).stored == 3


def test_withdrawing_a_participant_with_nothing_stored_says_none_can_be_refused(
        inst, tmp_path, rpacs):
    from rpacs.routing import withdraw_participant

    paths = f.write_study(tmp_path / "in", series=1, per_series=1)
    _import(inst, *paths)
    with inst.db.session() as session:
        session.add(Participant(project_id=session.scalar(select(Project.id)),
                                research_id="IMP-0003"))
    result = rpacs("participant", "withdraw", ACRONYM, "IMP-0003", "--yes")
    assert result.exit_code == 0, result.output
    assert "0 studies" in result.output and "none can be refused" in result.output
    assert withdraw_participant(inst, ACRONYM, "IMP-0003").already_withdrawn


def test_zip_input_and_zip_slip_refused(inst, tmp_path):
    paths = f.write_study(tmp_path / "in", series=1, per_series=2)
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(paths[0], "study/a.dcm")
        zf.write(paths[1], "../../escaped.dcm")
        zf.writestr("readme.txt", "hello")
    summary = _import(inst, archive)
    assert summary.stored == 1
    assert summary.not_dicom == 1
    assert [r.source.split("!")[1] for r in summary.rejected] == ["../../escaped.dcm"]
    assert not list(tmp_path.glob("**/escaped.dcm"))


def test_assignment_is_checked_before_reading(inst, tmp_path):
    from rpacs.errors import InvalidInputError

    f.write_study(tmp_path / "in", series=1, per_series=1)
    with pytest.raises(InvalidInputError):
        _import(inst, tmp_path / "in", participant="Nordmann")
    with pytest.raises(InvalidInputError):
        _import(inst, tmp_path / "in", event="week99")
    assert not list(inst.settings.store_dir.rglob("*.dcm"))


def test_patient_key_links_studies_without_the_id(inst, tmp_path):
    f.write_study(tmp_path / "a", study=1, series=1, per_series=1)
    f.write_study(tmp_path / "b", study=2, series=1, per_series=1, patient_id="99999999999")
    _import(inst, tmp_path / "a")
    _import(inst, tmp_path / "b", participant="IMP-0002")
    key = patient_key(inst.settings.installation_secret, f.PATIENT_ID)
    found = studies_of_patient(inst, key)
    assert len(found) == 1 and found[0][0] == ACRONYM
    assert f.PATIENT_ID not in key


def test_a_study_that_arrived_under_two_patient_ids_is_found_by_either(inst, tmp_path, rpacs):
    """A trauma patient registered under a temporary ID, then under the real one: asking
    for the real one found nothing, and a withdrawal refused only the temporary one."""
    temporary, real = "TEMP123", "15037512345"
    first = f.write_study(tmp_path / "a", study=1, series=1, per_series=2, patient_id=temporary)
    later = f.write_study(tmp_path / "b", study=1, series=2, per_series=1, patient_id=real)
    _import(inst, *first)
    _import(inst, later[-1])  # the second series, same study
    _import(inst, later[0])  # a file of the first series again, now under the real ID
    secret = inst.settings.installation_secret
    for patient in (temporary, real):
        assert [uid for _, uid in studies_of_patient(inst, patient_key(secret, patient))] \
            and len(studies_of_patient(inst, patient_key(secret, patient))) == 1, patient
    with inst.db.session() as session:
        assert session.scalar(select(func.count()).select_from(StudyPatientKey)) == 1
    assert rpacs("participant", "withdraw", ACRONYM, "IMP-0001", "--yes").exit_code == 0
    with inst.db.session() as session:
        refused = set(session.scalars(select(RefusedPatient.patient_key)))
    assert refused == {patient_key(secret, temporary), patient_key(secret, real)}


def _consistent(home: Path) -> tuple[int, int]:
    """Index rows all point at files; returns (instance rows, files in the store)."""
    db = sqlite3.connect(home / "rpacs.sqlite3")
    rows = db.execute("select path from instances").fetchall()
    counts = db.execute(
        "select (select count(*) from instances),"
        " (select coalesce(sum(n_instances), 0) from studies),"
        " (select coalesce(sum(n_instances), 0) from series)"
    ).fetchone()
    db.close()
    assert counts[0] == counts[1] == counts[2]
    for (path,) in rows:
        assert (home / "store" / path).is_file()
    return len(rows), len(list((home / "store").rglob("*.dcm")))


def _command_line(home: Path) -> tuple[dict[str, str], list[str]]:
    """The environment and command of ``rpacs`` in a process of its own, with the project
    made in ``home``."""
    env = {**os.environ, "RPACS_HOME": str(home)}
    rpacs = [sys.executable, "-m", "rpacs.cli.main"]
    subprocess.run(
        [*rpacs, "project", "create", ACRONYM, "--rek", "1", "--pi-name", "PI",
         "--pi-email", "pi@example.org", "--start", "2023-01-01", "--end", "2027-01-01",
         "--participant-pattern", r"^IMP-\d{4}$", "--events", "baseline"],
        env=env, check=True, capture_output=True,
    )
    return env, rpacs


def test_killed_import_is_consistent_and_a_rerun_completes(tmp_path):
    home = tmp_path / "home"
    env, rpacs = _command_line(home)
    for study in range(1, 9):
        f.write_study(tmp_path / "in", study=study, series=4, per_series=40)
    total = 8 * 4 * 40
    proc = subprocess.Popen(
        [*rpacs, "import", str(tmp_path / "in"), "--project", ACRONYM,
         "--participant", "IMP-0001", "--event", "baseline", "--workers", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline and len(list((home / "store").rglob("*.dcm"))) < total // 3:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    rows, files = _consistent(home)
    assert rows <= files < total
    done = subprocess.run(
        [*rpacs, "import", str(tmp_path / "in"), "--project", ACRONYM,
         "--participant", "IMP-0001", "--event", "baseline", "--workers", "2", "--json"],
        env=env, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    rows, files = _consistent(home)
    assert rows == files == total


def test_two_imports_of_one_study_at_once_both_end_well(tmp_path):
    """Both find the study new; the second to commit met a unique constraint and ended in
    a traceback. It now indexes its batch again and finds the other's rows."""
    home = tmp_path / "home"
    env, rpacs = _command_line(home)
    for study in range(1, 4):
        f.write_study(tmp_path / f"in{study}", study=study, series=2, per_series=10)
        runs = [subprocess.Popen(
            [*rpacs, "import", str(tmp_path / f"in{study}"), "--project", ACRONYM,
             "--participant", "IMP-0001", "--event", "baseline", "--workers", "1", "--json"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
        outputs = [run.communicate(timeout=120) for run in runs]
        for run, (_, stderr) in zip(runs, outputs, strict=True):
            assert run.returncode == 0 and "Traceback" not in stderr, stderr
        counts = [json.loads(stdout) for stdout, _ in outputs]
        assert sum(c["stored"] for c in counts) == 20
        assert sum(c["present"] for c in counts) == 20
    rows, files = _consistent(home)
    assert rows == files == 60


def test_a_zip_cut_short_is_rejected_and_nothing_stored_registers_no_participant(inst,
                                                                                 tmp_path):
    folder = tmp_path / "in"
    paths = [f.write(f.mr_dataset(f.Instance(number=n)), folder / f"{n}.dcm") for n in (1, 2)]
    whole = tmp_path / "cd.zip"
    with zipfile.ZipFile(whole, "w") as archive:
        for path in paths:
            archive.write(path, path.name)
    cut = tmp_path / "copied" / "cd.zip"
    cut.parent.mkdir()
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    summary = _import(inst, cut, participant="IMP-0009")
    assert (summary.stored, summary.not_dicom) == (0, 0) and not summary.ok
    assert [r.source for r in summary.rejected] == [str(cut)]
    assert "damaged, cut short" in summary.rejected[0].reason
    # Nothing was stored: the participant (perhaps a typo) is not registered either.
    from rpacs.projects import get_project, project_summary

    shown = project_summary(inst, get_project(inst, ACRONYM))
    assert shown["participants"] == 0, shown


def test_a_zip_of_dicom_inside_a_zip_or_named_otherwise_is_rejected_not_skipped(inst,
                                                                               tmp_path):
    inner = tmp_path / "inner.zip"
    with zipfile.ZipFile(inner, "w") as archive:
        archive.write(f.write(f.mr_dataset(), tmp_path / "x" / "1.dcm"), "1.dcm")
    outer = tmp_path / "in" / "outer.zip"
    outer.parent.mkdir()
    with zipfile.ZipFile(outer, "w") as archive:
        archive.write(inner, "inner.zip")
    (tmp_path / "in" / "export.dat").write_bytes(inner.read_bytes())
    # A CD's viewer (a .jar) and a report (.docx) are zips too, of no DICOM: skipped.
    with zipfile.ZipFile(tmp_path / "in" / "viewer.jar", "w") as archive:
        archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        archive.writestr("Viewer.class", b"\xca\xfe\xba\xbe" + b"\0" * 200)
    summary = _import(inst, tmp_path / "in")
    assert summary.stored == 0
    assert [Path(s.source).name for s in summary.skipped] == ["viewer.jar"]
    assert sorted(Path(r.source).name for r in summary.rejected) == [
        "export.dat", "outer.zip!inner.zip"]
    assert all("unpack or rename it" in r.reason for r in summary.rejected)
