"""Exports end to end: the issue's spec through the command line, identity, dates, scan,
reproducibility, stable IDs, sidecar errors and collisions."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import shutil
import stat
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydicom import dcmread
from sqlalchemy import select

from rpacs.db import AuditEvent, ExportId, Instance, Study
from rpacs.demo import write_mr_study
from rpacs.errors import InvalidInputError, ResidualPhiError
from rpacs.export import ExportSpec, plan_export, run_export
from rpacs.export.enum import TagAction
from rpacs.export.nifti import convert_series
from rpacs.ingest import import_paths

from .. import dicom_factory as f
from .conftest import ISSUE_SPEC, SLICES, Archive, mr_slice


def _cli(archive: Archive, *args: str):
    from rpacs.cli import cli

    env = {"RPACS_HOME": str(archive.home), "RPACS_DATABASE_URL": None, "RPACS_CONFIG": None,
           "RPACS_WORKERS": None}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def _zip_members(package: Path) -> dict[str, bytes]:
    members = {}
    for path in sorted(package.glob("*.zip")):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                members[f"{path.name}!{name}"] = archive.read(name)
    return members


def _archive_values(archive: Archive) -> tuple[set[str], set[str]]:
    """(every UID, every study date) of the archive's stored files."""
    uids, dates = set(), set()
    for path in archive.inst.settings.store_dir.rglob("*.dcm"):
        ds = dcmread(path, stop_before_pixels=True)
        uids |= {ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
                 ds.FrameOfReferenceUID}
        dates.add(ds.StudyDate)
    return uids, dates


def test_the_issue_spec_end_to_end(archive, issue_spec, sidecar, tmp_path):
    out = tmp_path / "out"
    result = _cli(archive, "export", archive.acronym, "--spec", str(issue_spec), "--out",
                  str(out), "--sidecar", str(sidecar), "--workers", "2")
    assert result.exit_code == 0, result.output
    package = out / "oslo-collab"
    assert sorted(p.name for p in out.iterdir()) == [
        "oslo-collab", "oslo-collab.coupling-list.csv", "oslo-collab.risk-report.json"]
    for beside in ("oslo-collab.coupling-list.csv", "oslo-collab.risk-report.json"):
        assert stat.S_IMODE((out / beside).stat().st_mode) == 0o600
    coupling = dict(csv.reader(io.StringIO((out / "oslo-collab.coupling-list.csv").read_text())))
    assert coupling.pop("research_id") == "export_id"
    assert sorted(coupling) == archive.participants
    assert len(set(coupling.values())) == 3
    assert all(e.startswith("OSL") and len(e) == 7 for e in coupling.values())
    zips = sorted(p.name for p in package.glob("*.zip"))
    assert zips == sorted(f"{e}.zip" for e in coupling.values())
    assert {p.name for p in package.iterdir()} == {*zips, "manifest.csv", "participants.tsv",
                                                   "README.txt"}

    members = _zip_members(package)
    dicoms = {k: v for k, v in members.items() if k.endswith(".dcm")}
    # T1 and FLAIR of 3 participants at 2 events, no DWI.
    assert len(dicoms) == 3 * 2 * 2 * SLICES
    assert sum(k.endswith(".nii.gz") for k in members) == 12
    assert sum(k.endswith(".json") for k in members) == 12
    some = next(k for k in dicoms if "/001_" in k)
    export_id = some.split("!")[0].removesuffix(".zip")
    assert some.split("!")[1].startswith(f"{export_id}/baseline/MR/001_t1-mprage_sag/")

    # Nothing of the archive's identity anywhere: research IDs, UIDs, dates.
    uids, study_dates = _archive_values(archive)
    texts = [(package / n).read_bytes() for n in ("manifest.csv", "participants.tsv",
                                                  "README.txt")]
    for blob in [*members.values(), *texts]:
        for research_id in archive.participants:
            assert research_id.encode() not in blob
        for uid in uids:
            assert uid.encode() not in blob
        for date in study_dates:
            assert date.encode() not in blob

    # The manifest lists every file with its hash.
    rows = list(csv.DictReader(io.StringIO((package / "manifest.csv").read_text())))
    assert len(rows) == len(members)
    import hashlib

    for row in rows:
        data = members[f"{row['zip']}!{row['path']}"]
        assert hashlib.sha256(data).hexdigest() == row["sha256"]

    # Tags as the spec says; birth dates moved with the study dates, so ages stay right.
    participants = {r["participant_id"]: r for r in csv.DictReader(
        io.StringIO((package / "participants.tsv").read_text()), delimiter="\t")}
    assert set(participants) == set(coupling.values())
    birth = {"EX-0001": dt.date(1978, 5, 12), "EX-0002": dt.date(1980, 1, 30),
             "EX-0003": dt.date(1979, 11, 2)}
    for research_id, export_id in coupling.items():
        name = next(k for k in dicoms if k.startswith(f"{export_id}.zip!{export_id}/baseline/"))
        ds = dcmread(io.BytesIO(dicoms[name]))
        assert ds.PatientID == ds.PatientName == export_id
        assert ds.StudyDescription == "Oslo collaboration"
        assert ds.SeriesDescription in ("t1-mprage sag", "FLAIR-ax")
        assert "StationName" not in ds
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        exported_birth = dt.datetime.strptime(ds.PatientBirthDate, "%Y%m%d").date()
        assert participants[export_id]["birth_date"] == exported_birth.isoformat()
        exported_study = dt.datetime.strptime(ds.StudyDate, "%Y%m%d").date()
        study = archive.participants.index(research_id) * 2 + 1  # baseline study number
        original_study = dt.date(2023, study % 12 + 1, 17)
        assert exported_study - exported_birth == original_study - birth[research_id]
        sidecar_json = json.loads(next(
            v for k, v in members.items()
            if k.startswith(f"{export_id}.zip!{export_id}/baseline/") and k.endswith(".json")))
        assert not {"PatientID", "PatientName", "StudyInstanceUID", "SeriesInstanceUID",
                    "AcquisitionDateTime", "StationName", "InstitutionName"} & set(sidecar_json)
        assert sidecar_json["SeriesDescription"] in ("t1-mprage sag", "FLAIR-ax")

    # dcm2niix converted the stored files: the image is the one the exported files give.
    prefix = next(k for k in dicoms if "/001_" in k).rsplit("/", 1)[0]
    series_dir = tmp_path / "exported-series"
    series_dir.mkdir()
    for name, data in dicoms.items():
        if name.startswith(prefix + "/"):
            (series_dir / name.rsplit("/", 1)[1]).write_bytes(data)
    converted = convert_series(series_dir, tmp_path / "converted")
    image = next(p for p in converted if p.name.endswith(".nii.gz"))
    assert image.read_bytes() == members[prefix + ".nii.gz"]

    readme = (package / "README.txt").read_text()
    assert "oslo-collab" in readme and "Made on:" in readme and "coupling list" in readme
    risk = json.loads((out / "oslo-collab.risk-report.json").read_text())
    assert risk["participants"] == 3 and risk["smallest_class"] == 1
    assert "risk: smallest class 1" in result.output
    with archive.inst.db.session() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "export")).one()
        assert event.details["spec"] == "oslo-collab"
        assert event.details["spec_sha256"] == ExportSpec.from_yaml(ISSUE_SPEC).sha256
        assert event.count == len(members)
        assert event.actor


def test_a_nifti_header_holds_nothing_of_the_image_comments(tmp_path):
    """dcm2niix copies ImageComments into the header's aux_file; the sidecar leaves the
    field out, and so does the image."""
    paths = write_mr_study(tmp_path / "series", seed=5, n_series=1, slices=3, rows=8, cols=8)
    assert "urolig" in dcmread(paths[0]).ImageComments
    image = next(p for p in convert_series(paths[0].parent, tmp_path / "out")
                 if p.name.endswith(".nii.gz"))
    with gzip.open(image, "rb") as fh:
        header = fh.read(348)
    assert header[228:252] == bytes(24)  # aux_file


def test_dry_run_prints_the_plan_and_writes_nothing(archive, issue_spec, sidecar, tmp_path):
    out = tmp_path / "out"
    result = _cli(archive, "export", archive.acronym, "--spec", str(issue_spec), "--out",
                  str(out), "--sidecar", str(sidecar), "--dry-run")
    assert result.exit_code == 0, result.output
    assert not out.exists()
    assert "dry run" in result.output and "12 series, 48 instance(s)" in result.output
    assert "/baseline/MR/001_t1-mprage_sag/00001.dcm" in result.output
    assert "StudyDescription: 'MR CEREBRUM ***' -> 'Oslo collaboration'" in result.output
    assert "PatientID: 'EX… (7 chars)' -> 'OSL" in result.output
    for research_id in archive.participants:
        assert research_id not in result.output
    with archive.inst.db.session() as session:  # derived from the archive's study UID
        study_ids = set(session.scalars(select(Study.study_id)))
    assert "StudyID: " in result.output
    assert not [s for s in study_ids if s in result.output]
    assert "risk: k-anonymity" in result.output
    # A spec that changes nothing says so for each series.
    kept = tmp_path / "keep.yaml"
    kept.write_text("name: as-stored\nselect: {participants: [EX-0001], events: [baseline]}\n")
    same = _cli(archive, "export", archive.acronym, "--spec", str(kept), "--out", str(out),
                "--dry-run")
    assert same.output.count("none: the files are exported as stored") == 3, same.output
    with archive.inst.db.session() as session:
        assert session.scalars(select(ExportId)).first() is None


def test_a_dry_run_masks_an_original_the_scan_would_find():
    from pydicom import Dataset

    from rpacs.export.scan import ScanRules
    from rpacs.export.service import _changes
    from rpacs.review import ReviewContext

    rules = ScanRules(research_ids=frozenset({"EX-0001"}), archive_uids=frozenset(),
                      check_dates=True, context=ReviewContext(frozenset(), "", ""))
    before, after = Dataset(), Dataset()
    before.SeriesDescription, after.SeriesDescription = "t1 EX-0001 scan", "t1 OSL0001 scan"
    before.ImageComments, after.ImageComments = "call 55 97 50 00", "call"
    before.ProtocolName, after.ProtocolName = "t1_mprage", "t1-mprage"
    shown = {c.tag: (c.before, c.after) for c in _changes(before, after, rules)}
    assert shown["SeriesDescription"] == ("t1… (15 chars)", "t1 OSL0001 scan")
    assert shown["ImageComments"] == ("ca… (16 chars)", "call")
    assert shown["ProtocolName"] == ("t1_mprage", "t1-mprage")  # nothing to hide


def test_the_same_spec_gives_byte_identical_packages(archive, issue_spec, sidecar, tmp_path):
    spec = ExportSpec.from_yaml(ISSUE_SPEC)
    packages = []
    for n in (1, 2):
        out = tmp_path / f"out{n}"
        run_export(archive.inst, archive.acronym, spec, out, sidecar=sidecar, workers=n)
        packages.append({p.relative_to(out): p.read_bytes() for p in out.rglob("*")
                         if p.is_file()})
    assert packages[0] == packages[1]
    zip_path = next((tmp_path / "out1" / "oslo-collab").glob("*.zip"))
    with zipfile.ZipFile(zip_path) as archive_zip:
        infos = archive_zip.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_ids_stay_when_participants_are_added(archive, issue_spec, sidecar, tmp_path):
    spec = ExportSpec.from_yaml(ISSUE_SPEC)
    first = plan_export(archive.inst, archive.acronym, spec, tmp_path / "o",
                        sidecar=sidecar)[0].participants
    run_export(archive.inst, archive.acronym, spec, tmp_path / "o1", sidecar=sidecar)
    folder = tmp_path / "new"
    for number in range(1, 3):
        f.write(mr_slice(99, 1, "t1 new", number, "PATNEW"), folder / f"{number}.dcm")
    assert import_paths(archive.inst, archive.acronym, "EX-0000", "baseline", [folder],
                        workers=1).ok
    sidecar.write_text(sidecar.read_text() + "EX-0000,1990-01-01,B\n")
    second = run_export(archive.inst, archive.acronym, spec, tmp_path / "o2", sidecar=sidecar)
    coupling = dict(csv.reader(io.StringIO(Path(second.coupling_list).read_text())))
    assert {r: coupling[r] for r in first} == first
    assert coupling["EX-0000"] not in first.values()


def test_without_coupling_list_nothing_links_back(archive, sidecar, tmp_path):
    text = ISSUE_SPEC.replace("coupling_list: true ", "coupling_list: false")
    spec = ExportSpec.from_yaml(text)
    ids = []
    for n in (1, 2):
        result = run_export(archive.inst, archive.acronym, spec, tmp_path / f"o{n}",
                            sidecar=sidecar)
        assert result.coupling_list == ""
        ids.append(sorted((tmp_path / f"o{n}" / "oslo-collab").glob("*.zip")))
        assert not list((tmp_path / f"o{n}").glob("*coupling*"))
        assert not list((tmp_path / f"o{n}").glob(".*"))  # the work folder (and key) is gone
    assert [p.name for p in ids[0]] != [p.name for p in ids[1]]
    with archive.inst.db.session() as session:
        assert session.scalars(select(ExportId)).first() is None


def test_a_participant_missing_from_the_sidecar_stops_before_writing(archive, issue_spec,
                                                                     sidecar, tmp_path):
    sidecar.write_text("research_id,birth_date\nEX-0001,1978-05-12\n")
    out = tmp_path / "out"
    result = _cli(archive, "export", archive.acronym, "--spec", str(issue_spec), "--out",
                  str(out), "--sidecar", str(sidecar))
    assert result.exit_code == 2
    assert "no row for 2 exported participant(s): EX-0002, EX-0003" in result.output
    assert not out.exists() or not any(out.iterdir())
    no_sidecar = _cli(archive, "export", archive.acronym, "--spec", str(issue_spec), "--out",
                      str(out))
    assert no_sidecar.exit_code == 2 and "--sidecar" in no_sidecar.output
    # Two rows for one participant with different values: an error, not the last row.
    sidecar.write_text("research_id,birth_date\nEX-0001,1978-05-12\nEX-0002,1980-01-30\n"
                       "EX-0003,1979-11-02\nEX-0002,1981-01-30\n")
    twice = _cli(archive, "export", archive.acronym, "--spec", str(issue_spec), "--out",
                 str(out), "--sidecar", str(sidecar), "--dry-run")
    assert twice.exit_code == 2
    assert "more than one row for 1 participant(s): EX-0002 (lines 3, 5)" in twice.output
    assert not out.exists() or not any(out.iterdir())
    # A column written into an age must hold ages.
    ages = tmp_path / "ages.yaml"
    ages.write_text("name: ages\ntags: [{tag: PatientAge, from_sidecar: age}]\n")
    sidecar.write_text("research_id,age\nEX-0001,045Y\nEX-0002,45\nEX-0003,050Y\n")
    wrong = _cli(archive, "export", archive.acronym, "--spec", str(ages), "--out", str(out),
                 "--sidecar", str(sidecar), "--dry-run")
    assert wrong.exit_code == 2
    assert "column 'age' is not a valid AS value for EX-0002" in wrong.output


def test_colliding_paths_are_an_error(archive, tmp_path):
    spec = ExportSpec.from_yaml(
        'name: flat\nlayout: "{participant}/{event}/{instance_number:05d}.dcm"')
    with pytest.raises(InvalidInputError, match="more than one file") as clash:
        run_export(archive.inst, archive.acronym, spec, tmp_path / "out")
    assert "EX-0001/baseline/00001.dcm" in str(clash.value)  # as the path would be spelt
    assert not (tmp_path / "out" / "flat").exists()
    # Its folders are made of data: what would be a finding is masked, as in a report.
    spec = ExportSpec.from_yaml(
        'name: quoted\nidentity: random\nselect: {series_description: "(?i)t1|flair"}\n'
        'layout: "{participant}/{series_description}/{instance_number:05d}.dcm"\n'
        'tags: [{tag: SeriesDescription, replace: {pattern: ".*", with: "EX-0002 ref"}}]\n')
    with pytest.raises(InvalidInputError, match="more than one file") as clash:
        run_export(archive.inst, archive.acronym, spec, tmp_path / "out")
    assert "EX-0002" not in str(clash.value) and "… (" in str(clash.value)
    # Two descriptions that differ in letter case only: one folder on Windows and macOS.
    spec = ExportSpec.from_yaml(
        'name: cased\nlayout: "{participant}/{event}/{series_description}/'
        '{instance_number:05d}.dcm"\nselect: {series_description: "(?i)t1|flair"}\ntags:\n'
        "  - {tag: SeriesDescription, replace: {pattern: '^t1.*', with: 'Scan'}}\n"
        "  - {tag: SeriesDescription, replace: {pattern: '^FLAIR.*', with: 'scan'}}\n")
    with pytest.raises(InvalidInputError, match="differ only in letter case") as clash:
        run_export(archive.inst, archive.acronym, spec, tmp_path / "out")
    assert "EX-0001/baseline/Scan/00001.dcm and EX-0001/baseline/scan/00001.dcm" in \
        str(clash.value)


def test_a_finding_removes_the_package(archive, tmp_path):
    # A rule that writes another participant's research ID into every description.
    text = ("name: leaky\nidentity: random\n"
            'tags: [{tag: StudyDescription, replace: {pattern: "^", with: "EX-0002 "}}]\n')
    spec = ExportSpec.from_yaml(text)
    out = tmp_path / "out"
    with pytest.raises(ResidualPhiError, match="research participant ID"):
        run_export(archive.inst, archive.acronym, spec, out)
    assert sorted(p.name for p in out.iterdir()) == ["leaky.scan-findings.json"]
    findings = json.loads((out / "leaky.scan-findings.json").read_text())
    assert "README.txt" in {x["file"] for x in findings}  # the rule, as README tells it
    assert {x["tag"] for x in findings if x["file"].endswith(".dcm")} == {"StudyDescription"}
    assert "EX-0002" not in json.dumps(findings)
    kept = run_export(archive.inst, archive.acronym, spec, tmp_path / "kept",
                      allow_findings=True)
    assert kept.findings and Path(kept.package).is_dir()
    # What was let through is on record beside the package.
    allowed = json.loads((tmp_path / "kept" / "leaky.scan-findings.json").read_text())
    assert allowed == findings
    # A clean run into the same folder leaves no earlier run's report beside its package.
    shutil.rmtree(tmp_path / "kept" / "leaky")
    run_export(archive.inst, archive.acronym, ExportSpec.from_yaml("name: leaky\n"),
               tmp_path / "kept")
    assert not (tmp_path / "kept" / "leaky.scan-findings.json").exists()
    spec_file = tmp_path / "leaky.yaml"
    spec_file.write_text(text)
    refused = _cli(archive, "export", archive.acronym, "--spec", str(spec_file), "--out",
                   str(tmp_path / "cli"))
    assert refused.exit_code == 1
    assert "error: the scan found" in refused.output and "research participant ID" in \
        refused.output
    assert not (tmp_path / "cli" / "leaky").exists()


def test_dates_removed_and_identity_kept(archive, tmp_path):
    spec = ExportSpec.from_yaml("name: nodates\ndates: remove\npackage: zip\n"
                                "select: {participants: [EX-0002], events: [followup]}")
    result = run_export(archive.inst, archive.acronym, spec, tmp_path / "out")
    assert result.package.endswith("nodates.zip") and result.participants == 1
    with zipfile.ZipFile(result.package) as package:
        names = [n for n in package.namelist() if n.endswith(".dcm")]
        assert len(names) == 3 * SLICES
        ds = dcmread(io.BytesIO(package.read(names[0])))
        assert "manifest.csv" in package.namelist()
    assert ds.PatientID == "EX-0002"
    assert ds.StudyDate == "" and ds.SeriesDate == ""
    with archive.inst.db.session() as session:
        uids = set(session.scalars(select(Instance.sop_uid)))
    assert ds.SOPInstanceUID in uids  # identity: keep leaves the archive's UIDs


def test_files_named_by_uid_carry_the_uids_written_into_them(archive, tmp_path):
    spec = ExportSpec.from_yaml(
        "name: byuid\nidentity: {participant: random, pattern: 'U{n:03d}'}\n"
        "select: {participants: [EX-0001], events: [baseline]}\n"
        "layout: '{participant}/{series_uid}/{sop_uid}.dcm'")
    result = run_export(archive.inst, archive.acronym, spec, tmp_path / "out")
    files = sorted(Path(result.package).rglob("*.dcm"))
    assert len(files) == 3 * SLICES
    with archive.inst.db.session() as session:
        archive_uids = set(session.scalars(select(Instance.sop_uid)))
    for file in files:
        ds = dcmread(file)
        assert file.stem == ds.SOPInstanceUID and file.parent.name == ds.SeriesInstanceUID
        assert ds.SOPInstanceUID not in archive_uids  # new UIDs, as identity: random asks


def test_an_existing_package_is_never_overwritten(archive, tmp_path):
    spec = ExportSpec.from_yaml("name: once\nselect: {participants: [EX-0001]}")
    run_export(archive.inst, archive.acronym, spec, tmp_path)
    from rpacs.errors import ConflictError

    with pytest.raises(ConflictError, match="already exists"):
        run_export(archive.inst, archive.acronym, spec, tmp_path)


def test_dry_run_json_holds_no_coupling(archive, issue_spec, sidecar, tmp_path):
    result = _cli(archive, "export", archive.acronym, "--spec", str(issue_spec), "--out",
                  str(tmp_path / "out"), "--sidecar", str(sidecar), "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data["plan"]["participants"]) == 3
    assert data["plan"]["counts"][0][1:] == ["baseline", "MR", 2, 2 * SLICES]
    for research_id in archive.participants:
        assert research_id not in result.output
    uids, _ = _archive_values(archive)
    assert not any(uid in result.output for uid in uids)


def test_an_unknown_event_or_empty_selection_is_named(archive, tmp_path):
    from rpacs.errors import NotFoundError

    with pytest.raises(InvalidInputError, match=r"select\.events: week12 is not an event"):
        run_export(archive.inst, archive.acronym,
                   ExportSpec.from_yaml("name: x\nselect: {events: [baseline, week12]}"),
                   tmp_path / "out")
    with pytest.raises(NotFoundError, match="matches no stored instance"):
        run_export(archive.inst, archive.acronym,
                   ExportSpec.from_yaml("name: x\nselect: {modalities: [CT]}"),
                   tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # Not into the archive's own folders.
    store = archive.inst.settings.store_dir / archive.acronym
    with pytest.raises(InvalidInputError, match="--out is inside the archive's store"):
        run_export(archive.inst, archive.acronym, ExportSpec.from_yaml("name: x\n"),
                   store / "exports")
    assert not (store / "exports").exists()
    for into in (archive.inst.settings.home, archive.inst.settings.tmp_dir / "x"):
        with pytest.raises(InvalidInputError, match="--out is"):
            run_export(archive.inst, archive.acronym, ExportSpec.from_yaml("name: x\n"),
                       into)
    # A mistyped participant is not left out without a word.
    with pytest.raises(InvalidInputError, match=r"select\.participants: EX-O001 is not a "
                       "participant of"):
        run_export(archive.inst, archive.acronym, ExportSpec.from_yaml(
            "name: x\nselect: {participants: [EX-0001, EX-O001]}"), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # A withdrawn one is gone on purpose: a saved spec that names it still runs.
    from rpacs.db import Project, Withdrawal

    with archive.inst.db.session() as session:
        project_id = session.scalar(select(Project.id))
        session.add(Withdrawal(project_id=project_id, research_id="EX-0099", paths=[],
                               files_removed=True))
    plan, _ = plan_export(archive.inst, archive.acronym, ExportSpec.from_yaml(
        "name: x\nselect: {participants: [EX-0001, EX-0099]}"), tmp_path / "out")
    assert set(plan.participants) == {"EX-0001"}
    # On the command line, with the spec's other problems and its file's name.
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncolour: red\nselect: {events: [week12]}\n")
    result = _cli(archive, "export", archive.acronym, "--spec", str(bad), "--out",
                  str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "bad.yaml: unknown key(s): colour" in result.output
    assert "bad.yaml: select.events: week12 is not an event of the project (one of: " \
        "baseline, followup, extra)" in result.output


def test_a_series_in_parts_gives_the_same_package(archive, sidecar, tmp_path, monkeypatch):
    import rpacs.export.service as service

    spec = ExportSpec.from_yaml(ISSUE_SPEC)
    whole = run_export(archive.inst, archive.acronym, spec, tmp_path / "whole", sidecar=sidecar)
    monkeypatch.setattr(service, "PART_SIZE", 3)  # SLICES = 4: every series in two parts
    parts = run_export(archive.inst, archive.acronym, spec, tmp_path / "parts", sidecar=sidecar,
                       workers=2)
    assert parts.files == whole.files and not parts.nifti_failed

    def files(folder: Path) -> dict[Path, bytes]:
        return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    assert files(tmp_path / "parts") == files(tmp_path / "whole")


def test_a_research_id_in_a_description_is_replaced_in_paths_and_sidecars(archive, tmp_path):
    # Clinical descriptions sometimes carry the research ID a radiographer typed in.
    folder = tmp_path / "in-id"
    for number in range(1, SLICES + 1):
        f.write(mr_slice(40, 1, "T1 EX-0004 scan", number, "PAT4"), folder / f"{number}.dcm")
    assert import_paths(archive.inst, archive.acronym, "EX-0004", "baseline", [folder],
                        workers=1).ok
    spec = ExportSpec.from_yaml(
        "name: ids\nselect: {participants: [EX-0004]}\n"
        "identity: {participant: random, pattern: 'Q{n:03d}'}\nformats: [dicom, nifti]\n"
        "package: directory\n")
    out = tmp_path / "out"
    run_export(archive.inst, archive.acronym, spec, out)  # the scan finds nothing
    package = out / "ids"
    export_id = next(p.name for p in package.iterdir() if p.is_dir())
    written = [p for p in package.rglob("*") if p.is_file()]
    assert not [p for p in written if "EX-0004" in str(p.relative_to(package))]
    assert not [p for p in written if b"EX-0004" in p.read_bytes()]
    image = next(p for p in written if p.suffix == ".dcm")
    assert dcmread(image).SeriesDescription == f"T1 {export_id} scan"
    assert image.parent.name == f"001_T1_{export_id}_scan"
    sidecar = json.loads(next(p for p in written if p.suffix == ".json").read_text())
    assert sidecar["SeriesDescription"] == f"T1 {export_id} scan"


def test_a_sidecar_field_filled_from_a_changed_attribute_changes_with_it(archive, tmp_path):
    # The files have no ProtocolName: dcm2niix fills it from the stored SeriesDescription,
    # which the rules change — the sidecar must not keep the archive's text under it.
    spec = ExportSpec.from_yaml(
        "name: proto\nselect: {participants: [EX-0001], events: [baseline]}\n"
        "formats: [nifti]\npackage: directory\ntags:\n"
        "  - {tag: SeriesDescription, replace: {pattern: '_', with: '-'}}\n")
    out = tmp_path / "out"
    run_export(archive.inst, archive.acronym, spec, out)
    sidecars = {p.name: json.loads(p.read_text()) for p in (out / "proto").rglob("*.json")}
    flair = next(v for k, v in sidecars.items() if k.startswith("002_"))
    assert flair["SeriesDescription"] == "FLAIR-ax"
    assert flair["ProtocolName"] == "FLAIR-ax"  # dcm2niix's, from the description
    assert "FLAIR_ax" not in json.dumps(sidecars)


def test_a_refusal_names_files_without_quoting_identifying_data(archive, tmp_path):
    # A rule puts a national-ID-like number, an address and another participant's research
    # ID into the description, and so into the layout's folder names.
    spec = ExportSpec.from_yaml(
        "name: leaky-paths\nidentity: {participant: random, coupling_list: false}\n"
        "select: {participants: [EX-0001]}\npackage: directory\ntags:\n"
        "  - {tag: SeriesDescription, replace: {pattern: '^', "
        "with: 'EX-0002 12345678901 kari@example.org '}}\n")
    out = tmp_path / "out"
    with pytest.raises(ResidualPhiError) as refused:
        run_export(archive.inst, archive.acronym, spec, out)
    report = (out / "leaky-paths.scan-findings.json").read_text()
    for text in (str(refused.value), report):
        assert "EX-0002" not in text and "12345678901" not in text and "kari@" not in text
    assert ".dcm" in report  # the files are still named, with those folders masked


def test_an_archive_date_typed_into_text_stops_the_export(archive, tmp_path):
    _, dates = _archive_values(archive)  # the archive's (project-shifted) study dates
    date = sorted(dates)[0]
    typed = f"{date[6:]}.{date[4:6]}.{date[:4]}"  # as a Norwegian report writes it
    spec = ExportSpec.from_yaml(
        "name: typed-date\nidentity: random\ndates: shift\npackage: directory\n"
        f"tags: [{{tag: ImageComments, set: 'prior study on {typed}'}}]\n")
    with pytest.raises(ResidualPhiError, match="archive date"):
        run_export(archive.inst, archive.acronym, spec, tmp_path / "out")


def test_a_value_a_rule_writes_declares_the_character_set_it_needs(archive, tmp_path):
    # The archive's files declare no character set (their text is ASCII).
    base = ("name: letters\nselect: {participants: [EX-0001], events: [baseline]}\n"
            "package: directory\ntags:\n"
            "  - {tag: StudyDescription, set: 'Oslo-samarbeid Ålesund'}\n")
    for extra, charset in (("", "ISO_IR 100"),
                           ("  - {tag: ImageComments, set: 'cœur'}\n", "ISO_IR 192")):
        out = tmp_path / charset.replace(" ", "_")
        run_export(archive.inst, archive.acronym, ExportSpec.from_yaml(base + extra), out)
        files = list((out / "letters").rglob("*.dcm"))
        assert files
        for path in files:
            ds = dcmread(path)
            assert ds.SpecificCharacterSet == charset  # Latin-1 holds Å, not œ
            assert ds.StudyDescription == "Oslo-samarbeid Ålesund"
            assert ds.ImageComments == "cœur" or not extra


def test_a_sidecar_field_changes_only_as_its_own_attribute_or_a_derived_one(tmp_path):
    from rpacs.export.nifti import strip_sidecar
    from rpacs.export.rewrite import Subject
    from rpacs.export.spec import TagRule

    series, protocol = 0x0008103E, 0x00181030

    def stripped(data: dict, *rules: TagRule) -> dict:
        path = tmp_path / "series.json"
        path.write_text(json.dumps(data))
        strip_sidecar(path, rules, Subject("EX-0001", "P001"))
        return json.loads(path.read_text())

    # Each field named like a rule's attribute takes its own rule, whatever they share.
    assert stripped({"SeriesDescription": "t1", "ProtocolName": "t1"},
                    TagRule(series, "SeriesDescription", TagAction.SET, value="anat"),
                    TagRule(protocol, "ProtocolName", TagAction.SET, value="proto")) == {
        "SeriesDescription": "anat", "ProtocolName": "proto"}
    # Codes and terms keep their value even when it equals a changed description.
    assert stripped({"Modality": "MR", "BodyPartExamined": "HEAD", "SeriesDescription": "HEAD",
                     "ProtocolName": "HEAD"},
                    TagRule(series, "SeriesDescription", TagAction.REMOVE)) == {
        "Modality": "MR", "BodyPartExamined": "HEAD"}
    assert stripped({"ProtocolName": "EX-0001 t1", "ImageType": ["EX-0001"]}) == {
        "ProtocolName": "P001 t1", "ImageType": ["P001"]}
