"""Clean (C): the instance's own identifying values and identifying patterns are cut out."""

from __future__ import annotations

import random
import re

import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence

from rpacs.deid import Deidentifier, Identity, Profile, TextCleaner, clean

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
    "kari.nordmann@example.no", "+47 55 97 50 00", "55975000", "912-34-567", "22 11 88 44",
    "2211-8844",
    # UIDs: they lead back to the PACS, and a vendor's spells the acquisition's date.
    "1.2.826.0.1.3680043.8.498.777888999000111222",
    "1.3.12.2.1107.5.2.43.67040.1.20210517081023456.0.0.0",
    "2.25.329800735698586629295641978511506172918",
    "1.2.276.0.7230010.3.1.4.0123",  # a leading zero: a time of day in a vendor's UID
])
def test_identifying_patterns_are_cut_whoever_they_belong_to(cleaner: TextCleaner, leak: str):
    assert cleaner.clean(f"see {leak}.") == "see ***."


@pytest.mark.parametrize("text", [
    "t1_mprage_sag_p2_iso 0.9mm", "ep2d_diff_mddw_30 b1000", "Axial T2 FLAIR",
    "TR 2300 TE 2.98 TI 900", "1.2.840.10008", "Dose 100 mGy", "3.14159265",
    "1.2.840.10008.5.1.4.1.1.4", "syngo 2.1.0.4", "IP 192.168.1.10", "ratio 0.084906",
    # Lists of b-values and delays, which researchers select series by: not phone numbers.
    "DWI b0 500 1000", "pCASL PLD 1800 2000 2200", "DTI 30dir b 0 1000 2000",
    "1000 2000 5 dirs",
    # Fewer than 8 digits in groups of two or more: never cut, not even in part.
    "TR 25 5 1500 90", "seq 2578351 8", "call 1234 5678.5",
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


def test_a_vendor_blob_loses_uids_and_the_instances_own_dates():
    """A Siemens protocol names the frame of reference and the study by their original
    UIDs, which spell the acquisition's date, and may write the study's date."""
    ds = f.mr_dataset()
    ds.StudyDate = ds.SeriesDate = "20210517"
    cleaner = TextCleaner.from_dataset(ds)
    blob = (b'SV10\x04\x03### ASCCONV BEGIN ###\ntReferenceImage0 = ""1.3.12.2.1107.5.2.43.'
            b'67040.1.20210517081023456.0.0.0""\nsStudyDate = ""20210517""\n'
            b'sSliceArray.asSlice[0].dThickness = 1.0\nlRepetitions = 20210518\n'
            b'tDate = 2021-05-17 and 17.05.2021\n'
            b'sClass = ""1.2.840.10008.5.1.4.1.1.4""\n### ASCCONV END ###')
    cleaned = cleaner.clean_bytes(blob)
    assert len(cleaned) == len(blob)
    assert b"1107" not in cleaned and b"20210517" not in cleaned
    assert b"2021-05-17" not in cleaned and b"17.05.2021" not in cleaned
    assert b"dThickness = 1.0" in cleaned and b"lRepetitions = 20210518" in cleaned
    assert b"1.2.840.10008.5.1.4.1.1.4" in cleaned


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


def _one_pattern(values: tuple[str, ...]) -> re.Pattern[bytes]:
    """What binary cleaning must cut, as one regular expression (how rpacs did it first):
    national identity numbers, then every spelling of the values, longest first, ASCII
    letters in any case, short values only where no ASCII letter or digit adjoins."""
    forms = clean._byte_forms(values)
    # A UID where one of the roots begins (the blob is searched only there).
    roots = "|".join(re.escape(r.decode()) for r in clean._UID_ROOTS)
    uid = clean.UID_IN_TEXT.replace("(?<![\\d.])", f"(?<![\\d.])(?={roots})", 1)
    assert uid != clean.UID_IN_TEXT
    parts = [clean._PATTERNS[0], uid]
    for form in sorted(forms, key=lambda f: (-len(f), f)):
        literal = re.escape(form).decode("latin-1")
        parts.append(literal if forms[form] >= 4
                     else f"(?<![A-Za-z0-9]){literal}(?![A-Za-z0-9])")
    return re.compile("|".join(parts).encode("latin-1"), re.IGNORECASE)


def _cut(pattern: re.Pattern[bytes], blob: bytes) -> bytes:
    return pattern.sub(lambda m: b"*" * len(m.group(0)), blob)


def _cleaner() -> TextCleaner:
    ds = Dataset()
    ds.PatientName = "Testesen^Ola^Al"
    ds.PatientID = "120578"
    ds.OtherPatientIDs = "Østerbø"
    ds.PatientBirthDate = "19780512"
    return TextCleaner.from_dataset(ds)


@pytest.mark.parametrize("blob", [
    b"",
    b"nothing to cut here: 3.14159265 12345678901234 0.00000000",
    b"id 120578 12345 and 12057812345",
    b"x12057812345y",  # a letter either side: still a number to cut
    b"1205781234",  # ten digits: not a national identity number
    b"TeStEsEn olA",
    b"\xd8STERB\xd8 and \xf8sterb\xf8",
    b"Al, Axial, xAl, Al1, _Al_, AL.",  # a short value: whole words only
    b"TestesenTestesen olaola 1978-05-12 12.05.1978",
    b"120578 1234512057812345",  # a value inside a number, a number inside digits
    b"ref 1.2.3.4.5 and x1.2.3.4.5 and 1.2.3.4. and 2.25.1234567890 and 1.1.2.3.4.5",
    b"1.2.840.10008.1.2.1 1.3.12.2.1107.5 Testesen1.2.3.4.5",
    b"IM_1.3.12.2.1107.5.2.43_0001.dcm and 1.2.840.113619.2.55.3.0123\x00",
])
def test_binary_cleaning_cuts_what_one_pattern_would(blob: bytes):
    """The searches that replaced one regular expression cut exactly what it cut."""
    cleaner = _cleaner()
    assert cleaner.clean_bytes(blob) == _cut(_one_pattern(cleaner.values), blob)


def test_binary_cleaning_agrees_with_the_pattern_on_random_blobs():
    """Values in random cases and places, overlapping, adjoining letters and digits, and
    digit runs of every length around them: the cut is the pattern's, byte for byte."""
    cleaner = _cleaner()
    pattern = _one_pattern(cleaner.values)
    pieces = [*(v.encode(e) for v in cleaner.values for e in ("utf-8", "latin-1")
                if v.isascii() or e == "utf-8"), b"\xd8sterb\xf8", b"12057812345",
              b"120578 12345", b"1", b"12", b"123456", b"a", b"A", b" ", b".", b"\x00", b"_",
              b"1.2.", b"1.3.", b"2.25.", b"2.16.", b"5.7.9"]
    rng = random.Random(20261202)
    for _ in range(3000):
        blob = b"".join(
            bytes(rng.choice(pieces)) if rng.random() < 0.7 else
            bytes(rng.randrange(256) for _ in range(rng.randrange(4)))
            for _ in range(rng.randrange(1, 12)))
        blob = bytes(b ^ 0x20 if 0x41 <= (b | 0x20) - 0x20 <= 0x5A and rng.random() < 0.3
                     else b for b in blob)  # random ASCII case
        assert cleaner.clean_bytes(blob) == _cut(pattern, blob), blob


def test_a_phone_number_is_cut_whole_or_not_at_all(cleaner: TextCleaner):
    assert cleaner.clean("Tlf.98765432") == "Tlf.***"  # after an abbreviation's dot
    """Every match of the pattern holds 8 digits or more, is not a run of round groups,
    and is not part of a longer number: on random text of digits and separators."""
    import random
    import re

    from rpacs.deid.patterns import PHONE_NUMBER

    pattern = re.compile(PHONE_NUMBER)
    rng = random.Random(8)
    for _ in range(20_000):
        text = "".join(rng.choice("0123456789   --+.ab") for _ in range(rng.randrange(1, 30)))
        for match in pattern.finditer(text):
            digits = re.sub(r"\D", "", match.group())
            assert len(digits) >= 8, (text, match.group())
            groups = re.split(r"[ -]", match.group().lstrip("+"))
            assert all(len(g) >= 2 for g in groups), (text, match.group())
            assert not (len(groups) > 1 and all(g.endswith("0") for g in groups)), text
            before, after = text[:match.start()], text[match.end():]
            assert not before[-1:].isdigit() and not after[:1].isdigit(), text
