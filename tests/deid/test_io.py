"""Reading instances strictly (and fast) and writing them exactly."""

from __future__ import annotations

import random
import struct
import warnings
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset, dcmread
from pydicom.dataelem import RawDataElement
from pydicom.tag import BaseTag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from rpacs.deid import (
    IMPLEMENTATION_CLASS_UID,
    Deidentifier,
    Identity,
    Profile,
    deidentify_instance,
    looks_like_dicom,
    read_instance,
    write_instance,
)
from rpacs.deid.io import _read_plain
from rpacs.errors import DeidentificationError, DicomInputError

from .. import dicom_factory as f

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
ENGINE = Deidentifier(Profile.default(), b"\x06" * 32, Identity("P-1", "PROJ1", "e"), -30)


def _reason(data: bytes) -> str:
    with pytest.raises(DicomInputError) as caught:
        read_instance(data, "input.dcm")
    assert caught.value.source == "input.dcm"
    return caught.value.reason


# -- what is refused, and why ----------------------------------------------------------


def test_empty_and_not_dicom_files_are_refused():
    assert "empty" in _reason(b"")
    assert _reason(b"%PDF-1.7 Testesen") == "not a DICOM file"
    assert _reason(b"\x89PNG\r\n\x1a\n" + b"\x00" * 200) == "not a DICOM file"
    assert _reason(b"\x00" * 128 + b"DICM") != ""  # a preamble and nothing else


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                                    ExplicitVRBigEndian])
def test_a_value_cut_by_the_end_of_the_file_is_refused(syntax: str):
    data = f.encoded(f.mr_dataset(), syntax)
    for cut in (len(data) - 1, len(data) - 100, len(data) - 512):  # inside the pixel data
        assert "truncated" in _reason(data[:cut])


def test_truncation_inside_headers_and_sequences_is_refused():
    ds = f.mr_dataset()
    del ds.PixelData
    data = f.encoded(ds)
    sequence_at = data.index(b"\x40\x00\x75\x02SQ")  # RequestAttributesSequence
    for cut in (sequence_at + 3, sequence_at + 20):
        assert "truncated" in _reason(data[:cut]) or "unreadable" in _reason(data[:cut])


def test_truncated_encapsulated_pixel_data_is_refused():
    data = (TEST_FILES / "JPEG2000.dcm").read_bytes()
    read_instance(data, "whole.dcm")
    assert "truncated" in _reason(data[: len(data) - 1000])


def test_truncated_files_shipped_with_pydicom_are_refused():
    for name in ("MR_truncated.dcm", "rtplan_truncated.dcm"):
        reason = _reason((TEST_FILES / name).read_bytes())
        assert "truncated" in reason or "unreadable" in reason, (name, reason)


@pytest.mark.parametrize(("keyword", "reason"), [
    ("SOPClassUID", "missing SOPClassUID"),
    ("SOPInstanceUID", "missing SOPInstanceUID"),
    ("StudyInstanceUID", "missing StudyInstanceUID"),
    ("SeriesInstanceUID", "missing SeriesInstanceUID"),
])
def test_instances_without_their_uids_are_refused(keyword: str, reason: str):
    ds = f.mr_dataset()
    delattr(ds, keyword)
    assert _reason(f.encoded(ds)) == reason
    setattr(ds, keyword, "")  # present but empty is as bad
    assert _reason(f.encoded(ds)) == reason


def test_reasons_never_carry_values_of_the_file():
    ds = f.mr_dataset()
    del ds.SOPInstanceUID
    data = f.encoded(ds)
    for broken in (data, data[:-7], b"Testesen^Ola " + data[13:]):
        with pytest.raises(DicomInputError) as caught:
            read_instance(broken, "x")
        assert "Testesen" not in str(caught.value) and f.PATIENT_ID not in str(caught.value)


def test_damaged_files_raise_only_input_or_deidentification_errors():
    # Deterministic damage: bytes flipped and files cut short at random places.
    data = f.encoded(f.mr_dataset(rows=8, cols=8))
    rng = random.Random(7)
    outcomes = {"read": 0, "refused": 0}
    for _ in range(300):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(132, len(damaged))] = rng.randrange(256)
        if rng.random() < 0.3:
            damaged = damaged[: rng.randrange(132, len(damaged))]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                deidentify_instance(bytes(damaged), "x", ENGINE)
            outcomes["read"] += 1
        except (DicomInputError, DeidentificationError):
            outcomes["refused"] += 1
    assert outcomes["read"] and outcomes["refused"]


# -- what is accepted ------------------------------------------------------------------


def test_a_bare_data_set_that_starts_like_dicom_is_accepted_and_gets_file_meta():
    ds = f.mr_dataset()
    del ds.file_meta
    body = BytesIO()
    pydicom.dcmwrite(body, ds, implicit_vr=False, little_endian=True)
    data = body.getvalue()
    assert data[:2] == b"\x08\x00" and data[128:132] != b"DICM"
    assert looks_like_dicom(data)
    read = read_instance(data, "bare.dcm")
    assert read.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    out, _ = deidentify_instance(data, "bare.dcm", ENGINE)
    back = dcmread(BytesIO(out))
    assert back.file_meta.MediaStorageSOPInstanceUID == back.SOPInstanceUID
    assert back.PixelData == ds.PixelData


def test_files_of_pydicom_without_file_meta_are_read():
    for name in ("ExplVR_LitEndNoMeta.dcm", "ExplVR_BigEndNoMeta.dcm"):
        ds = read_instance((TEST_FILES / name).read_bytes(), name)
        assert ds.file_meta.TransferSyntaxUID in (ExplicitVRLittleEndian, ExplicitVRBigEndian,
                                                  ImplicitVRLittleEndian), name


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_the_fast_reader_reads_what_dcmread_reads(syntax: str):
    ds = f.mr_dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    data = f.encoded(ds, syntax)
    fast = _read_plain(data)
    assert fast is not None
    assert_same_read(fast, dcmread(BytesIO(data)))


def assert_same_read(fast: Dataset, slow: Dataset) -> None:
    """Same elements with the same raw values, offsets and encodings; same file meta."""
    assert fast.original_encoding == slow.original_encoding
    assert fast.original_character_set == slow.original_character_set
    assert fast.preamble == slow.preamble
    for mine, theirs in ((fast, slow), (fast.file_meta, slow.file_meta)):
        assert list(mine._dict) == list(theirs._dict)
        for tag, element in mine._dict.items():
            other = theirs._dict[tag]
            if isinstance(other, RawDataElement) and isinstance(element, RawDataElement):
                assert element == other, tag
            else:  # pydicom converts SpecificCharacterSet while reading
                assert mine[tag].value == theirs[tag].value, tag


@pytest.mark.parametrize("data", [
    b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x04\x001.2\x00",  # no data set syntax
    f.encoded(f.mr_dataset(), ExplicitVRBigEndian),
    f.encoded(f.mr_dataset(), DeflatedExplicitVRLittleEndian),
    (TEST_FILES / "JPEG2000.dcm").read_bytes(),  # undefined length
])
def test_the_fast_reader_leaves_everything_else_to_dcmread(data: bytes):
    assert _read_plain(data) is None


# -- writing ---------------------------------------------------------------------------


def test_written_file_meta_is_rpacs_own_and_complete():
    ds = f.mr_dataset()
    ds.file_meta.SourceApplicationEntityTitle = "HAUKELAND_MR"
    ds.file_meta.ImplementationVersionName = "VENDOR_1"
    out, _ = deidentify_instance(f.encoded(ds), "a.dcm", ENGINE)
    back = dcmread(BytesIO(out))
    meta = back.file_meta
    assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert meta.ImplementationVersionName == "RPACS_0_1"
    assert "SourceApplicationEntityTitle" not in meta
    assert meta.FileMetaInformationVersion == b"\x00\x01"
    # The group length counts exactly the bytes of the other meta elements.
    length = struct.unpack("<L", out[140:144])[0]
    assert out[144 + length: 144 + length + 2] != b"\x02\x00"
    assert out[144 + length - 100: 144 + length].count(b"\x02\x00") >= 1
    assert back.file_meta.MediaStorageSOPClassUID == back.SOPClassUID


def test_deflated_files_are_written_deflated():
    data = f.encoded(f.mr_dataset(), DeflatedExplicitVRLittleEndian)
    out, _ = deidentify_instance(data, "a.dcm", ENGINE)
    back = dcmread(BytesIO(out))
    assert back.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    assert back.PixelData == f.mr_dataset().PixelData


def test_a_dataset_built_in_memory_can_be_written():
    ds = f.mr_dataset()
    ENGINE.deidentify(ds)
    back = dcmread(BytesIO(write_instance(ds)))
    assert back.PatientID == "P-1" and back.PixelData == f.mr_dataset().PixelData
    assert back.ReferencedImageSequence[0].ReferencedSOPClassUID == f.MRImageStorage


def test_an_odd_length_in_a_files_meta_is_written_padded():
    """A malformed source's odd-length meta value is kept, padded to an even length."""
    ds = f.mr_dataset()
    ds.file_meta._dict[BaseTag(0x00020013)] = RawDataElement(
        BaseTag(0x00020013), "SH", 7, b"VENDOR1", 0, False, True)
    out = write_instance(ds)
    length = struct.unpack("<L", out[140:144])[0]
    elements = out[144:144 + length]
    offset = 0
    while offset < len(elements):  # every element of the meta is of even length
        vr = elements[offset + 4:offset + 6]
        if vr in (b"OB", b"OW", b"UN", b"UT", b"UC", b"UR", b"SQ"):
            size, head = struct.unpack("<L", elements[offset + 8:offset + 12])[0], 12
        else:
            size, head = struct.unpack("<H", elements[offset + 6:offset + 8])[0], 8
        assert size % 2 == 0, elements[offset:offset + 4]
        offset += head + size
    assert offset == len(elements)
    assert dcmread(BytesIO(out)).file_meta.ImplementationVersionName == "VENDOR1"
