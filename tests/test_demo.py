"""The synthetic MR study, and ``rpacs demo``: clean, idempotent, and not blind to a leak."""

from __future__ import annotations

import json
import zipfile
from io import BytesIO
from pathlib import Path

import pydicom
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

from rpacs.demo import PlantedSearch, SyntheticPatient, run_demo, write_mr_study
from rpacs.demo.run import _shown_url, files_holding
from rpacs.installation import Installation
from rpacs.settings import Settings


def test_synthetic_study_is_a_realistic_mr_study_written_as_pydicom_would(tmp_path: Path):
    paths = write_mr_study(tmp_path / "a", seed=3, n_series=4, slices=3, rows=64, cols=48)
    assert len(paths) == 12
    datasets = [pydicom.dcmread(p) for p in paths]
    sop_uids = {str(ds.SOPInstanceUID) for ds in datasets}
    assert len(sop_uids) == 12
    assert {ds.SeriesDescription for ds in datasets} >= {"t1_mprage_sag_p2_iso",
                                                       "ep2d_diff_tra_b1000"}
    assert len({ds.StudyInstanceUID for ds in datasets}) == 1
    for path, ds in zip(paths, datasets, strict=True):
        assert ds.SOPClassUID == MRImageStorage
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert 100 <= len(ds) <= 150, "a clinical header, not a toy one"
        pixels = ds.pixel_array
        assert pixels.shape == (64, 48) and pixels.dtype.name == "uint16"
        assert pixels.min() == ds.SmallestImagePixelValue
        assert pixels.max() == ds.LargestImagePixelValue > 0
        assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID in sop_uids
        # Each series is encoded once and spliced per instance: the bytes must be exactly
        # what pydicom writes for the same dataset.
        rewritten = BytesIO()
        ds.save_as(rewritten, enforce_file_format=True)
        assert rewritten.getvalue() == path.read_bytes(), path.name
    again = write_mr_study(tmp_path / "b", seed=3, n_series=4, slices=3, rows=64, cols=48)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in paths]
    other = write_mr_study(tmp_path / "c", seed=4, n_series=1, slices=1, rows=64, cols=48)
    assert pydicom.dcmread(other[0]).StudyInstanceUID != datasets[0].StudyInstanceUID


def test_every_planted_value_is_in_the_input_where_the_reference_importer_leaked(
        tmp_path: Path):
    patient = SyntheticPatient()
    folder = tmp_path / "input"
    write_mr_study(folder, seed=1, n_series=3, slices=2, rows=32, cols=32, patient=patient)
    for value in patient.planted_values():
        assert files_holding(folder, PlantedSearch.of([value])), f"{value[:2]}… not planted"
    ds = pydicom.dcmread(next(folder.glob("*.dcm")))
    family = patient.name.split("^")[0]
    assert family.encode() in ds[0x00291010].value, "the CSA image header holds the name"
    assert ds[0x00290010].value == "SIEMENS CSA HEADER"
    assert family in ds[0x00331010].value, "a vendor block of free text"
    assert family in ds.ImageComments and patient.birth_date in ds.StudyDescription
    request = ds.RequestAttributesSequence[0]
    assert patient.accession in (request.RequestedProcedureID, request.AccessionNumber)
    deep = request.ScheduledProtocolCodeSequence[0].ProtocolContextSequence[0]
    assert deep.PersonName == patient.referring_physician, "a name three sequences deep"
    assert len(ds.PatientID) == 11 and ds.PatientID.isdigit()


def test_demo_is_clean_idempotent_and_sees_a_leak(tmp_path: Path):
    inst = Installation.open(Settings(home=tmp_path / "home", database_url=None, config=None))
    try:
        first = run_demo(inst)
        assert first.clean, first.render()
        assert first.stored == first.files == 36 and first.rejected == 0
        assert first.references == first.references_resolved == 36
        assert first.tag_paths > 100
        assert not Path(first.input_folder).exists(), "the PHI-laden input is removed"
        assert json.loads(json.dumps(first.as_dict()))["clean"] is True
        assert "nothing identifying found" in first.render()
        # The export at the end: T1 and FLAIR (12 slices each) as DICOM and NIfTI + JSON.
        assert first.export_files == 2 * 12 + 2 * 2 and not first.export_problems
        zips = list(Path(first.export_package).glob("*.zip"))
        assert len(zips) == 1 and zips[0].name.startswith("DMO")
        search = PlantedSearch.of(SyntheticPatient().planted_values())
        with zipfile.ZipFile(zips[0]) as package:
            for name in package.namelist():  # deflated members too, not only the zip's bytes
                assert not search.hints(package.read(name)), name
        exported = zips[0].read_bytes()

        second = run_demo(inst)
        assert second.clean and second.stored == 0 and second.present == 36
        assert zips[0].read_bytes() == exported, "the same export, byte for byte"

        # A leak anywhere under the home must be found (upper case, Latin-1 here), and
        # reported without the value.
        leak = inst.settings.tmp_dir / "left-behind.part"
        leak.write_bytes(b"\x00header\x00" + "NORDMANN^SYNNØVE".encode("latin-1"))
        third = run_demo(inst)
        assert not third.clean
        assert third.planted_found == ["tmp/left-behind.part (NO…, SY…)"]
        assert "NORDMANN" not in third.render() and "PROBLEMS FOUND" in third.render()
    finally:
        inst.close()


def test_the_printed_database_url_hides_its_password():
    shown = _shown_url("postgresql+psycopg://rpacs:s3cret@db.example.org/rpacs")
    assert "s3cret" not in shown and "db.example.org/rpacs" in shown
