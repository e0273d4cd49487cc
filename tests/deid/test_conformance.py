"""Every row of PS3.15 Table E.1-1 that can be planted is planted, de-identified and checked.

Each row with a concrete tag whose VR pydicom knows gets a value of that VR, alone in an
instance, at the top level and two sequence levels down; repeating-group rows are planted
in a concrete group (5002, 6002). The assertion is the action's observable effect: X absent,
Z empty, D replaced by a dummy, K unchanged (dates shifted), C cleaned, U mapped to a valid
keyed UID. The same runs again with each option switched on, for the rows it changes.
Tags the identity step overwrites and the file meta row are asserted in their own tests.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pytest
from pydicom import Dataset, dcmread
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.sequence import Sequence
from pydicom.uid import MRImageStorage

from rpacs.deid import (
    Deidentifier,
    Identity,
    Option,
    Profile,
    is_valid_uid,
    shift_da,
    shift_dt,
    table,
    uid_for,
    write_instance,
)
from rpacs.deid.profile import TableRow
from rpacs.deid.sop import _resolve_combined

SECRET = b"\x01" * 32
OFFSET = -400
IDENTITY = Identity("P-0001", "PROJ1", "baseline")
PATIENT_NAME = "Testesen^Ola"
#: Written by the identity step after the table (at the top level), asserted on their own.
IDENTITY_TAGS = {0x00100010, 0x00100020, 0x00080080, 0x00080090, 0x00200010, 0x00120062,
                 0x00120063, 0x00120064, 0x00280303}
#: The UIDs every instance needs; their rows are checked in test_instance_uids_and_file_meta.
FRAME_TAGS = {0x00080016, 0x00080018, 0x0020000D, 0x0020000E}
SAMPLE: dict[str, Any] = {
    "AE": "STATION7", "AS": "045Y", "CS": "SOMECODE", "DA": "20200115", "DS": "1.5",
    "DT": "20200115103000", "IS": "7", "LO": "Planted Testesen text", "LT": "Planted long",
    "PN": PATIENT_NAME, "SH": "PLANTED", "ST": "Planted short text", "TM": "103000",
    "UC": "planted", "UI": "1.2.3.4.5.6", "UR": "http://example.org/x", "UT": "planted text",
    "US": 7, "SS": 7, "UL": 7, "SL": 7, "FL": 1.5, "FD": 1.5, "OB": b"xTestesenx",
    "OW": b"xTestesenx", "OF": b"\x00\x00\x80\x3f", "OD": b"\x00" * 8,
    "OL": b"\x01\x00\x00\x00", "UN": b"xTestesenx", "AT": 0x00100010, "SV": 7, "UV": 7,
    "OV": b"\x00" * 8,
}
SHIFTED = {"DA": shift_da(SAMPLE["DA"], OFFSET), "DT": shift_dt(SAMPLE["DT"], OFFSET)}
NUMBER_VRS = {"US", "SS", "UL", "SL", "FL", "FD", "SV", "UV", "AT"}
BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}


def _concrete_tag(row: TableRow) -> int | None:
    """The row's tag; a repeating group's in its second group (5002, 6002); None if neither."""
    if row.is_private_row:
        return None
    mask, value = row.mask_and_value
    if mask == 0xFFFFFFFF:
        return value
    if row.tag.upper().startswith(("(50XX", "(60XX")):
        return value | 0x00020000 | (0 if mask & 0xFFFF else 0x3000)
    return None


def _vr(tag: int) -> str | None:
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return None
    return vr.split(" or ")[0] if vr else None


def _plantable() -> tuple[list[tuple[TableRow, int, str]], int]:
    rows, skipped = [], 0
    for row in table():
        tag = _concrete_tag(row)
        vr = _vr(tag) if tag is not None else None
        if tag is None or vr is None or (vr not in SAMPLE and vr != "SQ"):
            skipped += 1
            continue
        rows.append((row, tag, vr))
    return rows, skipped


PLANTABLE, SKIPPED = _plantable()


def test_nearly_the_whole_table_is_planted():
    # Skipped: the private-element row (its own tests), wildcard rows that are not
    # repeating groups, and a row whose VR pydicom does not know.
    assert len(PLANTABLE) + SKIPPED == len(table()) == 621
    assert SKIPPED <= 3, [r.tag for r in table() if r not in {p[0] for p in PLANTABLE}]


def _base() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = "1.2.3.100"
    ds.StudyInstanceUID = "1.2.3.200"
    ds.SeriesInstanceUID = "1.2.3.300"
    ds.PatientName = PATIENT_NAME
    ds.PatientID = "12057812345"
    return ds


def _planted(tag: int, vr: str) -> DataElement:
    if vr == "SQ":
        item = Dataset()
        item.PersonName = PATIENT_NAME  # a name inside must never survive
        item.ReferencedSOPInstanceUID = "1.2.3.100"
        item.add_new(0x00091001, "LO", "private inside")  # no creator: removed
        return DataElement(tag, vr, Sequence([item]))
    return DataElement(tag, vr, SAMPLE[vr])


def _instance(tag: int, vr: str, depth: int) -> tuple[Dataset, Dataset]:
    """An instance with the value planted ``depth`` levels down; (instance, holder)."""
    ds = holder = _base()
    for _ in range(depth):
        inner = Dataset()
        # Content Sequence (D) and an unlisted one: both are kept, their items de-identified.
        keyword = "ContentSequence" if holder is ds else "MRDiffusionSequence"
        setattr(holder, keyword, Sequence([inner]))
        holder = inner
    holder[tag] = _planted(tag, vr)
    return ds, holder


def _expected(code: str, row: TableRow) -> str:
    return _resolve_combined(code, row.tag, MRImageStorage) if "/" in code else code


def _check(code: str, holder: Dataset, tag: int, vr: str, option: Option | None) -> None:
    planted = SAMPLE.get(vr)
    full_dates = option is Option.RETAIN_LONGITUDINAL_FULL_DATES
    if code == "X":
        assert tag not in holder
        return
    assert tag in holder
    value = holder[tag].value
    if vr == "SQ":
        if code == "Z":
            assert len(value) == 0
            return
        # D, K, C, U: the sequence stays, its content is de-identified.
        assert len(value) == 1
        item = value[0]
        assert str(item.PersonName) in ("", "ANONYMOUS")  # (0040,A123) is D
        assert (0x0009, 0x1001) not in item
        kept = option is Option.RETAIN_UIDS
        assert item.ReferencedSOPInstanceUID == (
            "1.2.3.100" if kept else uid_for(SECRET, "1.2.3.100"))
        return
    if code == "Z":
        assert value in ("", None, b"", [])
    elif code == "D":
        if vr == "UI":
            assert value == uid_for(SECRET, planted) and is_valid_uid(value)
        elif vr in ("DA", "DT"):
            assert value == (SHIFTED[vr] if not full_dates else
                             {"DA": "19000101", "DT": "19000101000000"}[vr])
        elif vr in NUMBER_VRS:
            assert value == 0
        elif vr in BINARY_VRS:
            assert value == b"\x00\x00"
        else:
            assert value == {"PN": "ANONYMOUS", "TM": "000000", "AS": "000Y", "IS": "0",
                             "DS": "0"}.get(vr, "ANONYMIZED"[:16 if vr in ("SH", "AE", "CS")
                                                               else 64])
    elif code == "K":
        if vr in ("DA", "DT") and not full_dates:
            assert value == SHIFTED[vr]
        else:
            assert value == planted or str(value) == str(planted)
    elif code == "C":
        if vr in ("DA", "DT"):
            assert value == (planted if full_dates else SHIFTED[vr])
        elif vr == "PN":
            assert not value
        elif vr == "UI":
            assert value == uid_for(SECRET, planted)
        elif vr in BINARY_VRS:
            assert value == planted.replace(b"Testesen", b"********")
        elif vr in ("LO", "LT", "ST", "UT", "UC", "SH"):
            assert "Testesen" not in str(value) and str(value).startswith("Planted") == \
                str(planted).startswith("Planted")
        else:  # TM, numbers, codes: nothing to cut
            assert value == planted or str(value) == str(planted)
    elif code == "U":
        if vr == "UI":
            assert is_valid_uid(value) and value == uid_for(SECRET, planted)
        else:
            assert value in ("", None, b"")
    else:
        pytest.fail(f"unexpected code {code}")


PROFILES = ["basic", *[o.name for o in Option
                       if o.column and o is not Option.RETAIN_SAFE_PRIVATE]]


# Retain Safe Private has only the private-attributes row: see test_engine's private tests.
@pytest.mark.parametrize("depth", [0, 2])
@pytest.mark.parametrize("profile_name", PROFILES)
def test_every_row_under_every_option(profile_name: str, depth: int):
    option = None if profile_name == "basic" else Option[profile_name]
    profile = Profile(options=frozenset({option} if option else ()))
    engine = Deidentifier(profile, SECRET, IDENTITY, OFFSET)
    checked = 0
    for row, tag, vr in PLANTABLE:
        if option is not None and option.column not in row.options:
            continue
        if tag >> 16 == 0x0002 or (depth == 0 and tag in IDENTITY_TAGS | FRAME_TAGS):
            continue
        code = _expected(profile.code_for(row), row)
        ds, holder = _instance(tag, vr, depth)
        engine.deidentify(ds)
        try:
            _check(code, holder, tag, vr, option)
        except AssertionError as exc:
            raise AssertionError(f"{row.tag} {row.name} ({vr}) action {code} at depth "
                                 f"{depth}: {exc}") from exc
        checked += 1
    assert checked > (580 if option is None else 1)


@pytest.mark.parametrize("depth", [0, 2])
def test_repeating_groups_match_every_even_group_of_their_range(depth: int):
    engine = Deidentifier(Profile.basic(), SECRET, IDENTITY, OFFSET)
    ds, holder = _instance(0x60004000, "LT", depth)
    for tag, vr in ((0x601E3000, "OW"), (0x50001000, "US"), (0x50FE0010, "US"),
                    (0x60FE4000, "LT")):
        holder[tag] = _planted(tag, vr)
    engine.deidentify(ds)
    for tag in (0x60004000, 0x601E3000, 0x50001000, 0x50FE0010, 0x60FE4000):
        assert tag not in holder, f"{tag:08X}"
    with_graphics = Deidentifier(Profile(options=frozenset({Option.CLEAN_GRAPHICS})),
                                 SECRET, IDENTITY, OFFSET)
    ds, holder = _instance(0x601E3000, "OW", depth)
    with_graphics.deidentify(ds)
    assert holder[0x601E3000].value == b"x********x"  # C: cleaned in place, same length


def test_identity_is_written_after_the_table():
    ds = _base()
    ds.InstitutionName = "Haukeland"
    ds.ReferringPhysicianName = "Dr^Who"
    ds.StudyID = "4711"
    ds.PatientIdentityRemoved = "NO"
    Deidentifier(Profile.default(), SECRET, IDENTITY, OFFSET).deidentify(ds)
    assert ds.PatientID == ds.PatientName == "P-0001"
    assert ds.InstitutionName == "PROJ1"
    assert ds.ReferringPhysicianName == "baseline"
    assert ds.PatientIdentityRemoved == "YES"
    codes = [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113105", "113107", "113108"]
    assert all(item.CodingSchemeDesignator == "DCM" and item.CodeMeaning
               for item in ds.DeidentificationMethodCodeSequence)
    assert ds.DeidentificationMethod[0].startswith("rpacs")
    assert all(len(v) <= 64 for v in ds.DeidentificationMethod)
    assert ds.StudyID != "4711" and len(ds.StudyID) <= 16 and ds.StudyID.isdigit()
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"


def test_full_dates_are_not_marked_modified():
    ds = _base()
    profile = Profile(options=frozenset({Option.RETAIN_LONGITUDINAL_FULL_DATES}))
    Deidentifier(profile, SECRET, IDENTITY, OFFSET).deidentify(ds)
    assert "LongitudinalTemporalInformationModified" not in ds


def test_instance_uids_and_file_meta():
    ds = _base()
    ds.file_meta = Dataset()  # replaced by a proper file meta
    Deidentifier(Profile.default(), SECRET, IDENTITY, OFFSET).deidentify(ds)
    assert ds.SOPClassUID == MRImageStorage
    for keyword, original in (("SOPInstanceUID", "1.2.3.100"),
                              ("StudyInstanceUID", "1.2.3.200"),
                              ("SeriesInstanceUID", "1.2.3.300")):
        assert ds[keyword].value == uid_for(SECRET, original)
    # (0002,0003) Media Storage SOP Instance UID, the table's only file meta row: U.
    back = dcmread(BytesIO(write_instance(ds)))
    assert back.file_meta.MediaStorageSOPInstanceUID == uid_for(SECRET, "1.2.3.100")
    assert back.file_meta.MediaStorageSOPClassUID == MRImageStorage


def test_combined_codes_follow_the_attribute_type():
    # Device Serial Number: Type 3 in General Equipment (MR), Type 1 in Enhanced MR.
    assert _resolve_combined("X/Z/D", "(0018,1000)", MRImageStorage) == "X"
    assert _resolve_combined("X/Z/D", "(0018,1000)", "1.2.840.10008.5.1.4.1.1.4.1") == "D"
    # Content Date: Type 2 in General Image, Type 1 in SR documents.
    assert _resolve_combined("Z/D", "(0008,0023)", MRImageStorage) == "Z"
    assert _resolve_combined("Z/D", "(0008,0023)", "1.2.840.10008.5.1.4.1.1.88.22") == "D"
    # Patient ID: Type 2 in the Patient module. Type 2 is always Z, also for X/D.
    assert _resolve_combined("Z/D", "(0010,0020)", MRImageStorage) == "Z"
    assert _resolve_combined("X/D", "(300A,0006)", MRImageStorage) == "Z"
    # Unknown: the stricter action that still leaves a valid object.
    assert _resolve_combined("X/D", "(9999,9999)", MRImageStorage) == "D"
    assert _resolve_combined("X/Z/D", "(9999,9999)", MRImageStorage) == "Z"
    # Reference sequences are kept and their UIDs mapped.
    assert _resolve_combined("X/Z/U*", "(0008,1140)", MRImageStorage) == "U"


def test_every_combined_code_row_has_a_type_or_a_documented_fallback():
    from rpacs.deid.profile import attribute_types

    types = attribute_types()["types"]
    combined = [r for r in table() if "/" in r.basic]
    assert len(combined) == 49
    typed = [r for r in combined if r.tag.upper() in types]
    assert len(typed) >= 40, "most combined-code attributes have their Type listed"
    for entry in types.values():
        assert entry["default"] in (1, 2, 3)
