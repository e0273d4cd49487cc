"""Clean (C): the instance's own identifying values and identifying patterns are cut out."""

from __future__ import annotations

import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence

from rpacs.deid import Deidentifier, Identity, Profile, TextCleaner

from .. import dicom_factory as f


@pytest.fixture
def cleaner() -> TextCleaner:
    ds = f.mr_dataset()
    other = Dataset()
    other.PatientID = "SEQ-ID-55"
    ds.OtherPatientIDsSequence = Sequence([other])
    ds.PatientMotherBirthName = "Bakkevold^Ragnhild"
    return TextCleaner.from_dataset(ds)


@pytest.mark.parametrize("leak", [
    "Testesen", "TESTESEN", "testesens", "Ola", "Magnus",  # each name part, any case
    "12057812345", "HUS-778899", "SEQ-ID-55", "ACC20230517X",  # IDs and accession
    "19780512", "1978-05-12", "1978.05.12", "1978/05/12", "12.05.1978", "12/05/1978",
    "12-05-1978", "05/12/1978", "120578", "12.05.78",  # the birth date's spellings
    "Bakkevold", "Storgata",  # the mother's birth name, the street of the address
])
def test_the_instances_own_values_are_cut(cleaner: TextCleaner, leak: str):
    cleaned = cleaner.clean(f"before {leak} after")
    assert leak.lower() not in cleaned.lower()
    assert cleaned.startswith("before ") and cleaned.endswith(" after")


@pytest.mark.parametrize("leak", [
    "01017012345", "010170 12345",  # 11-digit national identity numbers
    "20210304", "2021-03-04", "04.03.2021", "4/3/2021", "04-03-21",  # anyone's dates
    "kari.nordmann@example.no", "+47 55 97 50 00", "55975000", "912-34-567",
])
def test_identifying_patterns_are_cut_whoever_they_belong_to(cleaner: TextCleaner, leak: str):
    assert cleaner.clean(f"see {leak}.") == "see ***."


@pytest.mark.parametrize("text", [
    "t1_mprage_sag_p2_iso 0.9mm", "ep2d_diff_mddw_30 b1000", "Axial T2 FLAIR",
    "TR 2300 TE 2.98 TI 900", "1.2.840.10008", "Dose 100 mGy", "3.14159265",
])
def test_technical_text_stays(cleaner: TextCleaner, text: str):
    assert cleaner.clean(text) == text


def test_short_name_parts_are_cut_only_as_whole_words():
    ds = Dataset()
    ds.PatientName = "Al^Bo"
    cleaner = TextCleaner.from_dataset(ds)
    cleaned = cleaner.clean("Axial Bolus, Al and bo; t1_Al_sag")
    assert cleaned == "Axial Bolus, *** and ***; t1_***_sag"


def test_binary_values_are_cleaned_in_place(cleaner: TextCleaner):
    blob = (b"SV10\x04\x03\x02\x01\x00PatientName\x00TESTESEN^OLA\x00 id 120578 12345 "
            b"TR 2300000 \xff\xfe")
    cleaned = cleaner.clean_bytes(blob)
    assert len(cleaned) == len(blob)
    assert b"TESTESEN" not in cleaned and b"OLA" not in cleaned and b"12345" not in cleaned
    assert b"TR 2300000" in cleaned and cleaned.startswith(b"SV10")


def test_binary_values_are_cleaned_in_utf8_and_latin1():
    ds = Dataset()
    ds.PatientName = "Østerbø^Åse"
    cleaner = TextCleaner.from_dataset(ds)
    for encoding in ("utf-8", "latin-1"):
        family, given = "ØSTERBØ".encode(encoding), "Åse".encode(encoding)
        blob = b"x " + family + b" " + given + b" y"
        expected = b"x " + b"*" * len(family) + b" " + b"*" * len(given) + b" y"
        assert cleaner.clean_bytes(blob) == expected


def test_a_whole_document_is_cleaned_by_the_engine():
    ds = f.mr_dataset()
    ds.StudyDescription = "MR CEREBRUM Testesen 12.05.1978"
    ds.SeriesDescription = "t1 for Ola, ring 55975000"
    ds.ImageComments = "Pasient 12057812345 (HUS-778899) acc ACC20230517X, kari@example.no"
    ds.AdditionalPatientHistory = "Testesen had MR 2019-03-04 at Storgata"
    ds.ProtocolName = "t1_mprage_sag"
    engine = Deidentifier(Profile.default(), b"\x01" * 32, Identity("P-1", "PROJ1", "e"), -9)
    engine.deidentify(ds)
    assert ds.StudyDescription == "MR CEREBRUM *** ***"
    assert ds.SeriesDescription == "t1 for ***, ring ***"
    assert ds.ImageComments == "Pasient *** (***) acc ***, ***"
    assert ds.AdditionalPatientHistory == "*** had MR *** at ***"
    assert ds.ProtocolName == "t1_mprage_sag"


def test_cleaned_values_are_cut_to_the_vr_length():
    ds = f.mr_dataset()
    ds.StationName = "Ol"  # two characters: SH, 16 at most
    ds.add_new(0x00181030, "LO", "Ola " * 16)  # Protocol Name, LO: 64
    engine = Deidentifier(Profile.default(), b"\x01" * 32, Identity("P-1", "PROJ1", "e"), -9)
    engine.deidentify(ds)
    assert len(ds.ProtocolName) <= 64 and "Ola" not in ds.ProtocolName


@pytest.mark.parametrize("blob", [
    b"",
    b"nothing to cut here: 3.14159265 12345678901234 0.00000000",
    b"id 120578 12345 and 12057812345",
    b"x12057812345y",  # a letter either side: still a number to cut
    b"1205781234",  # ten digits: not a national identity number
    b"TeStEsEn olA",
    b"\xd8STERB\xd8 and \xf8sterb\xf8",
])
def test_binary_cleaning_prefilter_agrees_with_the_pattern(blob: bytes):
    """The quick searches before the pattern's scan must never skip a blob it would cut."""
    ds = Dataset()
    ds.PatientName = "Testesen^Ola"
    ds.PatientID = "120578"
    ds.OtherPatientIDs = "Østerbø"
    cleaner = TextCleaner.from_dataset(ds)
    assert cleaner.clean_bytes(blob) == cleaner._binary.sub(
        lambda m: b"*" * len(m.group(0)), blob)
    if cleaner._binary.search(blob):
        assert cleaner._may_match_bytes(blob)
