"""The quarantine's header reader against pydicom: the same values, or no answer at all."""

from __future__ import annotations

import io

import pytest
from pydicom import Dataset, dcmread
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from rpacs.quarantine import read_header
from rpacs.quarantine.header import WANTED, scan_header

from .dicom_factory import Instance, mr_dataset


def encoded(ds: Dataset, syntax: str = ExplicitVRLittleEndian) -> bytes:
    ds.file_meta.TransferSyntaxUID = syntax
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True, little_endian=None, implicit_vr=None)
    return out.getvalue()


def by_pydicom(data: bytes) -> dict[str, str]:
    ds = dcmread(io.BytesIO(data))
    return {keyword: str(getattr(ds, keyword, "") or "").strip()
            for keyword in WANTED.values()}


def plain() -> Dataset:
    return mr_dataset(Instance(3, 2, 1))


def padded() -> Dataset:
    ds = plain()
    ds.StudyDescription = " spaced out "
    ds.Modality = "MR "
    del ds.AccessionNumber
    ds.PatientID = ""
    return ds


def latin1() -> Dataset:
    ds = plain()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.StudyDescription = "Hjerne/rygg \u00e6\u00f8\u00e5"
    return ds


def several_ids() -> Dataset:
    ds = plain()
    ds.PatientID = ["A1", "B2"]
    return ds


def nested_before_the_uids() -> Dataset:
    # Sequences (written with undefined lengths) before the study's UIDs, one nested.
    ds = plain()
    inner = Dataset()
    inner.CodeValue, inner.CodingSchemeDesignator = "X1", "99RPACS"
    outer = Dataset()
    outer.CodeValue = "Y2"
    outer.ConceptCodeSequence = [inner]
    ds.ProcedureCodeSequence = [outer, Dataset()]
    ds.ReferencedStudySequence = []
    for keyword in ("ProcedureCodeSequence", "ReferencedStudySequence"):
        ds[keyword].is_undefined_length = True
    outer["ConceptCodeSequence"].is_undefined_length = True
    outer.is_undefined_length_sequence_item = True
    return ds


CASES = {
    # name: (dataset, transfer syntax, whether the fast reader answers)
    "explicit": (plain, ExplicitVRLittleEndian, True),
    "implicit": (plain, ImplicitVRLittleEndian, True),
    "padded and missing values": (padded, ExplicitVRLittleEndian, True),
    "sequences of undefined length": (nested_before_the_uids, ExplicitVRLittleEndian, True),
    "sequences, implicit": (nested_before_the_uids, ImplicitVRLittleEndian, True),
    "latin-1 text": (latin1, ExplicitVRLittleEndian, False),
    "several values": (several_ids, ExplicitVRLittleEndian, False),
    "big endian": (plain, ExplicitVRBigEndian, False),
    "deflated": (plain, DeflatedExplicitVRLittleEndian, False),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_fast_reader_answers_as_pydicom_or_not_at_all(name: str) -> None:
    make, syntax, answers = CASES[name]
    data = encoded(make(), syntax)
    fast = scan_header(data)
    assert (fast is not None) == answers
    if fast is not None:
        assert fast == by_pydicom(data)
    # read_header gives pydicom's values either way.
    header = read_header(data, b"secret")
    reference = by_pydicom(data)
    assert (header.sop_uid, header.series_uid, header.study_uid, header.study_description,
            header.accession_number, header.modality, header.study_date) == (
        reference["SOPInstanceUID"], reference["SeriesInstanceUID"],
        reference["StudyInstanceUID"], reference["StudyDescription"][:64],
        reference["AccessionNumber"][:16], reference["Modality"], reference["StudyDate"])


def test_damaged_files_are_left_to_pydicom() -> None:
    data = encoded(nested_before_the_uids())
    assert scan_header(data[:400]) is None  # cut inside the elements before the UIDs
    assert scan_header(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff") is None
    assert scan_header(b"not dicom at all") is None
