"""The residual-PHI scan on data sets made for it: what it finds, and what it leaves."""

from __future__ import annotations

import json

import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from rpacs.deid import read_instance, write_instance
from rpacs.export.scan import InstanceScan, ScanRules, dates_in_text, mask, scan_text
from rpacs.review import ReviewContext

ARCHIVE_UID = "2.25.1234567890123456789012345678901234"
RULES = ScanRules(
    research_ids=frozenset({"EX-0001", "EX-0002"}),
    archive_uids=frozenset({ARCHIVE_UID}),
    check_dates=True,
    context=ReviewContext(own_values=frozenset({"OSL0001", "baseline"}),
                          first_date="20100101", last_date="20101231"),
    spec_tags=frozenset({0x00081030}),
)


def _written(**values: str) -> tuple[Dataset, bytes]:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.SOPInstanceUID = "2.25.42"
    ds.StudyInstanceUID = "2.25.43"
    ds.SeriesInstanceUID = "2.25.44"
    ds.PatientID = "OSL0001"
    ds.StudyDate = "20100505"
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    data = write_instance(ds)
    return read_instance(data, "x.dcm"), data


def _reasons(ds: Dataset, uids=(), dates=()) -> set[tuple[str, str]]:
    return {(f.tag, f.reason) for f in InstanceScan(RULES).scan(ds, "x.dcm", uids, dates)}


def test_a_clean_instance_has_no_finding():
    ds, data = _written(SeriesDescription="t1 mprage")
    assert _reasons(ds, uids={"2.25.99"}, dates={"20230517"}) == set()
    assert InstanceScan(RULES).scan_bytes(data, "x.dcm", {"2.25.99"}, "EX-0001") == []


def test_research_ids_archive_uids_and_dates_are_found():
    ds, _ = _written(ImageComments="seen as EX-0002 before",
                     ReferencedSOPInstanceUID=ARCHIVE_UID,
                     SeriesDescription=f"copy of {ARCHIVE_UID}",
                     ContentDate="20230517")
    found = _reasons(ds, dates={"20230517"})
    assert ("ImageComments", "research participant ID") in found
    assert ("ReferencedSOPInstanceUID", "archive UID") in found
    assert ("SeriesDescription", "archive UID") in found  # a UID typed into text
    assert ("ContentDate", "archive date") in found
    assert ("ContentDate", "date outside the project's shifted study dates") in found


def test_values_the_spec_sets_are_not_flagged_but_a_leak_still_is():
    ds, _ = _written(StudyDescription="Dr Hansen Study 12345678")  # set by the spec
    assert _reasons(ds) == set()
    ds, _ = _written(OperatorsName="Hansen^Kari")
    assert ("OperatorsName", "person name") in _reasons(ds)
    # A research ID is a leak whoever wrote it (a sidecar column's row, a careless set).
    ds, _ = _written(StudyDescription="sibling of EX-0002")
    assert _reasons(ds) == {("StudyDescription", "research participant ID")}


def _with_raw(**values: tuple[str, bytes]) -> tuple[Dataset, bytes]:
    """A written data set with elements set from raw bytes (keyword → (VR, value)): values
    pydicom would refuse to set, as a malformed source file holds them."""
    from pydicom.datadict import tag_for_keyword
    from pydicom.dataelem import RawDataElement

    ds, _ = _written()
    for keyword, (vr, value) in values.items():
        tag = tag_for_keyword(keyword)
        ds._dict[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)
    data = write_instance(ds)
    return read_instance(data, "x.dcm"), data


def test_text_typed_into_a_number_time_or_age_is_flagged_as_the_review_does():
    ds, _ = _with_raw(SliceThickness=("DS", b"Kari Nordmann "),
                      InstanceNumber=("IS", b"EX-0001 "),
                      PatientAge=("AS", b"45 years"),
                      AcquisitionTime=("TM", b"kl 10:15 "),
                      PixelSpacing=("DS", b"0.48828125\\0.48828125 "),
                      EchoTime=("DS", b"2.46"))
    found = _reasons(ds)
    for keyword, vr in (("SliceThickness", "DS"), ("InstanceNumber", "IS"),
                        ("PatientAge", "AS"), ("AcquisitionTime", "TM")):
        assert (keyword, f"not a valid {vr} value (text where a number, time or age "
                         "belongs)") in found
    assert ("InstanceNumber", "research participant ID") in found
    assert not {k for k, _ in found} & {"PixelSpacing", "EchoTime"}


def test_bytes_are_searched_for_the_instances_own_uids_and_research_id():
    _, data = _written()
    data += b"\x00private\x00" + ARCHIVE_UID.encode() + b"EX-0001"
    found = InstanceScan(RULES).scan_bytes(data, "x.dcm", {ARCHIVE_UID}, "EX-0001")
    assert {f.reason for f in found} == {"archive UID", "research participant ID"}
    assert all("EX-0001" not in f.masked and ARCHIVE_UID not in f.masked for f in found)


def test_text_files_name_line_and_column():
    found = scan_text("participants.tsv", "participant_id\tnote\nOSL0001\twas EX-0001\n",
                      RULES, frozenset())
    assert [(f.tag, f.reason) for f in found] == [("line 2, note", "research participant ID")]
    text = json.dumps({"a": {"b": ["2010-01-01", ARCHIVE_UID]}})
    found = scan_text("x.json", text, RULES, frozenset({"20100101"}))
    assert {(f.tag, f.reason) for f in found} == {("a.b[0]", "archive date"),
                                                  ("a.b[1]", "archive UID")}


@pytest.mark.parametrize("pixels", [0, 40_000], ids=["header", "whole file"])
def test_the_byte_search_finds_each_uid_that_occurs_and_no_other(pixels: int):
    # UIDs sharing a prefix, one the prefix of another; two sharing 16 characters.
    present = ["2.25.1234", "2.25.12345678", "2.25.77", "2.25.98765432109876"]
    absent = ["2.25.1235", "2.25.78", "2.25.99", "2.25.98765432109875"]
    data = (b"\x00" * 1000 + b"2.25.12345678\x00" + b"\x01" * 50 + b"x2.25.77y"
            + b"2.25.987654321098765" + b"\x02" * pixels)
    found = InstanceScan(RULES).scan_bytes(data, "x.dcm", present + absent, "EX-0001")
    assert [f.masked for f in found] == [mask(u) for u in sorted(present)]
    # "2.25.7" occurs inside "2.25.77": a byte search finds it there too.
    found = InstanceScan(RULES).scan_bytes(data, "x.dcm", ["2.25.7", "1.2.3"], "EX-0001")
    assert [f.masked for f in found] == [mask("2.25.7")]
    # Kept original UIDs open differently, and may be shorter than the shared opening.
    data += b"1.2.840.99\x001.2"
    found = InstanceScan(RULES).scan_bytes(
        data, "x.dcm", ["1.2.840.99", "1.2.840.9", "1.2", "1.3", "2.25.77", ""], "EX-0001")
    assert [f.masked for f in found] == [mask(u) for u in ["1.2", "1.2.840.9", "1.2.840.99",
                                                           "2.25.77"]]


@pytest.mark.parametrize(("text", "expected"), [
    # A value split over two cells is two values: neither is a finding.
    ("a,b\nEX,-0001\n2.25.12345,67890123456789012345678901234\n2010,0101\n", []),
    ("a,b\nx,y\n" * 500, []),  # a manifest without a finding: searched once
    ("a,b\n" + "x,y\n" * 500 + f"z,{ARCHIVE_UID} EX-0002 20100101\n",
     [("line 502, b", "research participant ID"), ("line 502, b", "archive UID"),
      ("line 502, b", "archive date")]),
    ('a,b\n"quoted ""EX-0001""",y\n', [("line 2, a", "research participant ID")]),
    (f"a,b\nx,copy of {ARCHIVE_UID}.\n", [("line 2, b", "archive UID")]),  # a full stop
])
def test_text_files_are_searched_by_value_not_across_values(text: str, expected: list):
    found = scan_text("manifest.csv", text, RULES, frozenset({"20100101"}))
    assert [(f.tag, f.reason) for f in found] == expected


@pytest.mark.parametrize(("text", "dates"), [
    ("prior study on 20130926", ("20130926",)),
    ("seen 2013-09-26, 2013.09.27 and 2013/09/28", ("20130926", "20130927", "20130928")),
    ("kontroll 26.09.2013", ("20130926",)),
    ("kontroll.26.09.2013 and scan.2013-09-27", ("20130926", "20130927")),  # after a word
    ("ctl 9/10/2013", ("20131009", "20130910")),  # day-first or American: both
    ("v1.2.20130926 and 26.09.13", ()),  # part of a version; a two-digit year
    ("2013-13-01, 32.01.2013, 123456789", ()),  # no such month or day; a long number
])
def test_dates_typed_into_text_are_read_in_common_spellings(text: str, dates: tuple):
    assert dates_in_text(text) == dates


def test_an_archive_date_typed_into_text_is_found():
    ds, _ = _written(ImageComments="prior study 17.05.2023", SeriesDescription="t1 20230518")
    found = _reasons(ds, dates={"20230517"})
    assert ("ImageComments", "archive date") in found
    assert ("SeriesDescription", "archive date") not in found  # another day


def test_a_report_masks_path_components_that_quote_identifying_data():
    assert RULES.masked_path("OSL0001/baseline/MR/001_t1_mprage/00001.dcm") == \
        "OSL0001/baseline/MR/001_t1_mprage/00001.dcm"
    leaky = "OSL0001.zip!OSL0001/baseline/MR/001_T1_EX-0002_scan/00001.dcm"
    assert RULES.masked_path(leaky) == \
        f"OSL0001.zip!OSL0001/baseline/MR/{mask('001_T1_EX-0002_scan')}/00001.dcm"
    # The layout's own study dates (the export's, in its date range) and new UIDs stay:
    # files must stay told apart.
    own = "OSL0001/baseline/20100505_MR/001_t1/2.25.123456789012345678.dcm"
    assert RULES.masked_path(own) == own
    for component in ("002_pas_12345678901", "003_kari@example.org", f"x_{ARCHIVE_UID}",
                      "004_20123456789", "005_T1_born_19780512", "006_pas_20123456"):
        name = f"{component}.json"
        assert RULES.masked_path(f"OSL0001/{name}") == f"OSL0001/{mask(name)}"


def test_a_sidecars_text_fields_are_flagged_as_the_attribute_is():
    text = json.dumps({"SeriesDescription": "T1 Nordmann 22118844 ola.nordmann@ous.no",
                       "ConversionSoftwareVersion": "v1.0.20260724",  # not an attribute
                       "ImageType": ["ORIGINAL", "PRIMARY"], "EchoTime": 0.0025,
                       "StudyDescription": "Dr Hansen 12345678"})  # set by the spec
    found = scan_text("001_t1.json", text, RULES, frozenset())
    assert {(f.tag, f.reason) for f in found} == {
        ("SeriesDescription", "e-mail address"),
        ("SeriesDescription", "long run of digits (an ID or phone number?)")}


def test_a_spec_set_value_copied_into_another_sidecar_field_is_the_authors_too():
    # The spec set StudyDescription (RULES.spec_tags); dcm2niix-like copies of it elsewhere
    # are not flagged, while the same text typed into another field would be.
    text = json.dumps({"StudyDescription": "Cohort 2020123456",
                       "ProcedureStepDescription": "Cohort 2020123456",
                       "SeriesDescription": "t1 2020123457"})
    found = scan_text("001_t1.json", text, RULES, frozenset())
    assert [(f.tag, f.reason) for f in found] == [
        ("SeriesDescription", "long run of digits (an ID or phone number?)")]
