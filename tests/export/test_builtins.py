"""Built-in specs, NIfTI conversion and its failures, zips, and the risk report."""

from __future__ import annotations

import io
import json
import resource
import subprocess
import zipfile
import zlib
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.fileset import FileSet
from sqlalchemy import select

from rpacs.db import ExportId, Study
from rpacs.export import ExportSpec, builtin_spec, package, risk_report, run_export
from rpacs.export.package import Span, write_zip
from rpacs.ingest import import_paths

from .. import dicom_factory as f
from .conftest import SLICES, mr_slice


def test_study_builtin_is_a_dicomdir_folder_with_a_new_id(archive, tmp_path):
    with archive.inst.db.session() as session:
        study_uid = session.scalars(select(Study.study_uid).order_by(Study.id)).first()
    spec = builtin_spec(f"study:{study_uid}")
    result = run_export(archive.inst, archive.acronym, spec, tmp_path / "out")
    package = Path(result.package)
    fileset = FileSet(dcmread(package / "DICOMDIR"))
    assert len(fileset) == 3 * SLICES
    patient_ids = {instance.PatientID for instance in fileset}
    assert len(patient_ids) == 1 and patient_ids.pop().startswith("STUDY")
    # Nothing quotes the archive's study UID, not even in part (as the package's name
    # once did), nor a hash of a text that holds it (the spec's, in README.txt).
    tail = study_uid[-12:]
    assert tail not in str(package.relative_to(tmp_path))
    for path in package.rglob("*"):
        if path.is_file():
            assert tail not in str(path.relative_to(package))
            assert tail.encode() not in path.read_bytes()
            assert b"EX-0001" not in path.read_bytes()
    assert spec.sha256 not in (package / "README.txt").read_text()
    assert (package / "manifest.csv").read_text().count("\n") == 3 * SLICES + 2  # + DICOMDIR
    with archive.inst.db.session() as session:
        assert session.scalars(select(ExportId)).first() is None
    assert not list((tmp_path / "out").glob("*coupling*"))


def test_a_dicomdir_with_research_ids_kept(archive, tmp_path):
    """No key replaces the UIDs then: the file-set UID is the plan's own all the same."""
    spec = ExportSpec.from_yaml("name: dd\nselect: {participants: [EX-0001]}\n"
                                "dicomdir: true\n")
    package = Path(run_export(archive.inst, archive.acronym, spec, tmp_path / "out").package)
    fileset = FileSet(dcmread(package / "DICOMDIR"))
    assert {instance.PatientID for instance in fileset} == {"EX-0001"}
    assert fileset.UID.is_valid and fileset.UID.startswith("2.25.")
    # The dry run says the layout's paths become the file-set's names.
    from click.testing import CliRunner

    from rpacs.cli import cli

    spec_file = tmp_path / "dd.yaml"
    spec_file.write_text("name: dd\nselect: {participants: [EX-0001]}\ndicomdir: true\n")
    env = {"RPACS_HOME": str(archive.home), "RPACS_DATABASE_URL": None, "RPACS_CONFIG": None,
           "RPACS_WORKERS": None}
    dry = CliRunner().invoke(cli, ["export", archive.acronym, "--spec", str(spec_file),
                                   "--out", str(tmp_path / "dry"), "--dry-run"], env=env)
    assert dry.exit_code == 0 and "PT000000/ST000000/SE000000/IM000000" in dry.output


def test_research_package_keeps_research_ids(archive, tmp_path):
    result = run_export(archive.inst, archive.acronym, builtin_spec("research-package"),
                        tmp_path / "out")
    package = Path(result.package)
    assert sorted(p.name for p in package.glob("*.zip")) == [
        f"{p}.zip" for p in archive.participants]
    with zipfile.ZipFile(package / "EX-0001.zip") as zipped:
        names = zipped.namelist()
        assert len(names) == 2 * 3 * SLICES
        assert all(n.startswith("EX-0001/") for n in names)
        assert dcmread(io.BytesIO(zipped.read(names[0]))).PatientID == "EX-0001"


def _images(package: Path) -> dict[str, bytes]:
    """The NIfTI images and sidecars of a package, by path."""
    return {p.relative_to(package).as_posix(): p.read_bytes() for p in package.rglob("*")
            if p.name.endswith((".nii.gz", ".json"))}


def test_an_export_in_the_caller_s_process_leaves_its_collector_alone(archive, tmp_path):
    """Only forked export workers freeze what they inherit: a caller's own objects (the
    web app's, a script's) must stay collectable."""
    import gc

    before = gc.get_freeze_count()
    run_export(archive.inst, archive.acronym, builtin_spec("research-package"),
               tmp_path / "out", workers=1)
    assert gc.get_freeze_count() == before and gc.isenabled()

@pytest.mark.parametrize("stray", ["before", "during", "failing"])
def test_nifti_converts_exactly_the_planned_instances(stray, archive, tmp_path, monkeypatch):
    """dcm2niix reads a series' store folder as it is only while it holds exactly the
    planned instances; a file the index does not list, there from the start or added while
    dcm2niix runs, sends the series through a folder of links to the planned ones."""
    from rpacs.export import worker

    links: list[str] = []
    real_symlink = worker.os.symlink
    monkeypatch.setattr(worker.os, "symlink",
                        lambda src, dst: links.append(str(src)) or real_symlink(src, dst))
    spec = builtin_spec("nifti")
    plain = Path(run_export(archive.inst, archive.acronym, spec, tmp_path / "plain",
                            workers=1).package)
    assert not links, "every store folder holds exactly its series: read as it is"
    store = archive.inst.settings.store_dir
    folders = sorted({p.parent for p in store.rglob("*.dcm")})
    target, other = folders[0], folders[1]
    extra = next(other.glob("*.dcm"))  # an instance of another series, not of this one
    real_convert = worker.convert_series
    converted: list[Path] = []

    def converting(folder: Path, *args: object, **kwargs: object) -> list[Path]:
        converted.append(folder)
        if stray != "before" and folder == target and not (target / "stray.dcm").exists():
            (target / "stray.dcm").write_bytes(extra.read_bytes())
            if stray == "failing":  # dcm2niix failed on what was added meanwhile
                raise worker.ConversionError("dcm2niix wrote no image")
        return real_convert(folder, *args, **kwargs)

    monkeypatch.setattr(worker, "convert_series", converting)
    if stray == "before":
        (target / "stray.dcm").write_bytes(extra.read_bytes())
    result = run_export(archive.inst, archive.acronym, spec, tmp_path / "again", workers=1)
    again = Path(result.package)
    assert len(links) == SLICES and all(Path(link).parent == target for link in links)
    # A stray file found first is never given to dcm2niix; one found after, once.
    assert converted.count(target) == (stray != "before")
    assert not result.nifti_failed
    assert _images(again) == _images(plain)


def test_nifti_builtin_and_a_series_that_cannot_be_converted(archive, tmp_path):
    folder = tmp_path / "nopixels"
    for number in range(1, 3):
        ds = mr_slice(50, 9, "localizer", number, "PATX")
        del ds.PixelData
        f.write(ds, folder / f"{number}.dcm")
    assert import_paths(archive.inst, archive.acronym, "EX-0001", "extra", [folder],
                        workers=1).ok
    result = run_export(archive.inst, archive.acronym, builtin_spec("nifti"), tmp_path / "out",
                        workers=2)
    package = Path(result.package)
    images = sorted(package.rglob("*.nii.gz"))
    assert len(images) == 3 * 2 * 3
    assert not list(package.rglob("*.dcm"))
    assert len(result.nifti_failed) == 1 and "series 9" in result.nifti_failed[0]
    sidecar = json.loads(images[0].with_name(images[0].name.replace(".nii.gz", ".json"))
                         .read_text())
    assert "PatientID" not in sidecar and "SeriesInstanceUID" not in sidecar
    assert sidecar["EchoTime"] == 0.01
    assert "could not be converted" in (package / "README.txt").read_text()


def test_zip_entries_are_sorted_timestamped_and_zip64_when_large(tmp_path, monkeypatch):
    files = {}
    for name in ("b/2.dcm", "a/1.dcm", "README.txt"):
        path = tmp_path / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode() * 1000)
        files[name] = path
    write_zip(tmp_path / "small.zip", files)
    with zipfile.ZipFile(tmp_path / "small.zip") as zipped:
        infos = zipped.infolist()
    assert [i.filename for i in infos] == ["README.txt", "a/1.dcm", "b/2.dcm"]
    assert [i.compress_type for i in infos] == [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED,
                                                zipfile.ZIP_STORED]
    # Entries past 2 GiB need ZIP64 records: lower the limit rather than write 2 GiB.
    monkeypatch.setattr(package, "ZIP64_LIMIT", 1000)
    write_zip(tmp_path / "large.zip", files)
    data = (tmp_path / "large.zip").read_bytes()
    assert b"PK\x06\x06" in data  # the ZIP64 end of central directory record
    with zipfile.ZipFile(tmp_path / "large.zip") as zipped:
        assert zipped.testzip() is None  # every CRC-32 right
        assert [i.file_size for i in zipped.infolist()] == [10000, 7000, 7000]
        assert zipped.read("a/1.dcm") == files["a/1.dcm"].read_bytes()
        assert zipped.read("README.txt") == files["README.txt"].read_bytes()


def test_a_zip_of_more_files_than_descriptors_allowed(tmp_path):
    """A download of a folder package zips thousands of files of their own: each is open
    only while it is copied, so the process' limit on open files is no limit on them."""
    files: dict[str, Path | Span] = {}
    for n in range(300):
        path = tmp_path / "in" / f"{n:03d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"%d" % n * 50)
        files[path.name] = path
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
    try:
        write_zip(tmp_path / "many.zip", files)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    with zipfile.ZipFile(tmp_path / "many.zip") as zipped:
        assert zipped.testzip() is None and len(zipped.namelist()) == 300


def test_a_zip_from_spans_of_a_blob_is_the_zip_from_files(tmp_path):
    files: dict[str, Path | Span] = {}
    blob = tmp_path / "part.bin"
    spans: dict[str, Path | Span] = {}
    with open(blob, "wb") as fh:
        for name in ("b/2.dcm", "a/1.dcm", "c/3.dcm", "d/Ø 4.dcm"):
            path = tmp_path / "in" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            data = name.encode() * 777
            path.write_bytes(data)
            files[name] = path
            # As the workers make them: the CRC-32 computed as the blob is written.
            spans[name] = Span(blob, fh.tell(), len(data), zlib.crc32(data))
            fh.write(data)
    readme = tmp_path / "README.txt"
    readme.write_text("what this is\n")
    files["README.txt"] = spans["README.txt"] = readme
    write_zip(tmp_path / "files.zip", files)
    write_zip(tmp_path / "spans.zip", spans)
    assert (tmp_path / "spans.zip").read_bytes() == (tmp_path / "files.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "spans.zip") as zipped:
        assert zipped.testzip() is None
        assert zipped.namelist() == ["README.txt", "a/1.dcm", "b/2.dcm", "c/3.dcm", "d/Ø 4.dcm"]
        assert zipped.read("d/Ø 4.dcm") == (tmp_path / "in" / "d/Ø 4.dcm").read_bytes()
    # And so does a reader that is not Python's.
    tested = subprocess.run(["unzip", "-tq", str(tmp_path / "spans.zip")],
                            capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # A blob cut short is an error, not a short entry.
    spans["c/3.dcm"] = Span(blob, blob.stat().st_size - 10, 20)
    with pytest.raises(OSError, match="ends before"):
        write_zip(tmp_path / "short.zip", spans)
    assert not (tmp_path / "short.zip").exists()
    assert not (tmp_path / ".short.zip.part").exists()


def test_k_anonymity_names_small_classes_and_what_lifts_them():
    traits = {f"P{n}": {"sex": "F", "birth_date": f"19800{n % 9 + 1}01", "age": f"04{n % 5}Y"}
              for n in range(10)}
    report = risk_report(traits, k=5)
    assert report.smallest_class == 1 and len(report.below_k) == 10
    lifted = {name: still for name, still in report.generalisations.items()}
    assert lifted["birth date → year"] == sorted(traits)  # ages still split them
    assert lifted["birth date → year and age → 5-year band"] == []
    assert report.as_dict()["generalisations"][-1]["lifts_all"] is True
    assert risk_report({f"P{n}": {"sex": "F"} for n in range(5)}, k=5).below_k == []


def test_zip_per_study_names_each_study(archive, tmp_path):
    from rpacs.export import ExportSpec

    spec = ExportSpec.from_yaml("name: studies\npackage: zip-per-study\n"
                                "select: {participants: [EX-0001, EX-0003]}")
    result = run_export(archive.inst, archive.acronym, spec, tmp_path / "out")
    package = Path(result.package)
    assert sorted(p.name for p in package.glob("*.zip")) == [
        "EX-0001_baseline_1.zip", "EX-0001_followup_1.zip",
        "EX-0003_baseline_1.zip", "EX-0003_followup_1.zip"]
    with zipfile.ZipFile(package / "EX-0003_followup_1.zip") as zipped:
        names = zipped.namelist()
    assert len(names) == 3 * SLICES and all(n.startswith("EX-0003/followup/") for n in names)
    manifest = (package / "manifest.csv").read_text().splitlines()
    assert manifest[0].endswith(",zip") and len(manifest) == 1 + 4 * 3 * SLICES


def test_study_builtin_into_a_relative_out_folder(archive, tmp_path, monkeypatch):
    """The command line as a user types it: ``--out`` relative to the working folder."""
    from click.testing import CliRunner

    from rpacs.cli import cli

    with archive.inst.db.session() as session:
        study_uid = session.scalars(select(Study.study_uid).order_by(Study.id)).first()
    monkeypatch.chdir(tmp_path)
    env = {"RPACS_HOME": str(archive.home), "RPACS_DATABASE_URL": None, "RPACS_CONFIG": None}
    done = CliRunner().invoke(cli, ["export", archive.acronym, "--spec", f"study:{study_uid}",
                                    "--out", "viewer-copy"], env=env, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    [package] = [p for p in (tmp_path / "viewer-copy").iterdir() if p.is_dir()]
    assert len(FileSet(dcmread(package / "DICOMDIR"))) == 3 * SLICES
    assert not list((tmp_path / "viewer-copy").glob(".*export-work"))
