"""Every file shipped with pydicom and pydicom-data is imported or rejected with a reason.

Nothing may crash the run, and every stored file's pixel data (native or encapsulated, big or
little endian) must be byte-for-byte the input's.
"""

from __future__ import annotations

import warnings
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread

from rpacs.deid import (
    Deidentifier,
    Identity,
    Profile,
    read_instance,
    uid_for,
    write_instance,
)
from rpacs.errors import DicomInputError
from rpacs.ingest import import_paths
from rpacs.installation import Installation
from rpacs.projects import ProjectSpec, create_project, get_project
from rpacs.settings import Settings

from .dicom_factory import shipped_data_folders

PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009, 0x54001010, 0x00420011)


def _uids(path: Path) -> tuple[str, str, str] | None:
    """(StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID) of a file, None if unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(path, force=True, stop_before_pixels=True)
        study, series, sop = (str(ds.get(k, "") or "") for k in
                              ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"))
    except Exception:
        return None
    return (study, series, sop) if study and series and sop else None


def _raw_pixels(path: Path | str) -> dict[int, bytes]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dcmread(path, force=True)
    found = {}
    for tag in PIXEL_TAGS:
        element = ds.get_item(tag)
        if element is not None:
            found[tag] = element.value if isinstance(element.value, bytes) else ds[tag].value
    return found


@pytest.mark.slow
def test_every_shipped_file_is_stored_or_rejected_with_pixels_intact(tmp_path: Path):
    folders = shipped_data_folders()
    assert len(folders) == 2, "pydicom's test files and pydicom-data must both be installed"
    inst = Installation.open(Settings(home=tmp_path / "home"))
    total = 0
    rejected: set[str] = set()
    for index, folder in enumerate(folders):
        # One project per source: the two collections reuse some study UIDs for other
        # patients, which one project would rightly refuse to merge.
        acronym = f"REALWORLD{index}"
        create_project(inst, ProjectSpec(
            acronym=acronym, rek="1", pi_name="PI", pi_email="pi@example.org",
            start_date="2020-01-01", end_date="2030-01-01", participant_pattern=r"RW-\d{3}",
            events=["baseline"]))
        summary = import_paths(inst, acronym, "RW-001", "baseline", [folder], workers=2)
        print(f"{folder}: {summary.as_dict() | {'rejected': len(summary.rejected)}}")
        for rejection in summary.rejected:
            print(f"  rejected {Path(rejection.source).name}: {rejection.reason}")
            assert rejection.reason and "Traceback" not in rejection.reason
        total += summary.total
        rejected.update(r.source for r in summary.rejected)
    # Each stored file is found from its input: the store path is made of the project's
    # keyed UIDs of the input's own UIDs, which the test can compute with the project's secret.
    checked = 0
    for index, folder in enumerate(folders):
        acronym = f"REALWORLD{index}"
        secret = get_project(inst, acronym).secret
        inputs: dict[Path, Path] = {}
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            if str(path) in rejected:
                continue
            uids = _uids(path)
            if uids is not None:
                study, series, sop = (uid_for(secret, uid) for uid in uids)
                stored_path = inst.settings.store_dir / acronym / study / series / f"{sop}.dcm"
                inputs.setdefault(stored_path, path)
        stored = sorted((inst.settings.store_dir / acronym).rglob("*.dcm"))
        assert len(stored) > 20
        for path in stored:
            assert path in inputs, f"{path.name}: stored, but from no input of {folder.name}"
            assert _raw_pixels(path) == _raw_pixels(inputs[path]), \
                f"{inputs[path].name}: pixel bytes changed"
            checked += 1
    assert checked > 150
    inst.close()
    files = sum(1 for folder in folders for p in folder.rglob("*") if p.is_file())
    assert total == files, "every shipped file is stored, present, skipped or rejected"


@pytest.mark.slow
def test_engine_keeps_pixels_of_every_readable_shipped_file():
    """Each file alone (no archive conflicts): read, de-identify, write, read back."""
    engine = Deidentifier(Profile.default(), b"\x05" * 32, Identity("RW-001", "RW", "e"), -9)
    checked = 0
    for folder in shipped_data_folders():
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            try:
                ds = read_instance(path.read_bytes(), path.name)
            except DicomInputError:
                continue
            before = _raw_pixels(path)
            engine.deidentify(ds)
            out = write_instance(ds)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                back = dcmread(BytesIO(out))
            assert back.PatientIdentityRemoved == "YES", path.name
            assert back.PatientID == "RW-001", path.name
            after = {}
            for tag in PIXEL_TAGS:
                element = back.get_item(tag)
                if element is not None:
                    after[tag] = element.value if isinstance(element.value, bytes) \
                        else back[tag].value
            assert after == before, f"{path.name}: pixel bytes changed"
            checked += 1
    assert checked > 180
