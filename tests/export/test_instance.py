"""The export's byte path gives the reference path's bytes, findings and traits.

Differential: every input goes through the reference path (:func:`export_instance`: pydicom
data set, Rewriter.apply, write_instance, InstanceScan.scan) with one rewriter and scanner,
and through the worker's way (:func:`export_raw`, the reference path where it declines)
with another pair, twice (the second time from the memos, as the later files of a series
are); the results must be equal. Specs vary identity (keep, random), dates (keep, shift,
remove) and tag rules; inputs are factory files with sequences (nested ones, ones that
differ per instance), private tags, multi-valued UIDs and dates, odd lengths and group
lengths, in explicit and implicit VR and three character sets; the demo study; and pydicom's
and pydicom-data's shipped files. Where the byte path declines, the test says so.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import random
import struct
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
)

from rpacs.deid import keep_by_size, parse_plain, write_instance
from rpacs.demo import write_mr_study
from rpacs.errors import InvalidInputError
from rpacs.export.enum import DatesMode, TagAction
from rpacs.export.instance import ExportedInstance, export_instance, export_raw
from rpacs.export.rewrite import Rewrite, Rewriter, Subject
from rpacs.export.scan import InstanceScan, ScanRules
from rpacs.export.spec import TagRule
from rpacs.review import ReviewContext

from .. import dicom_factory as f

KEY = b"\x42" * 32
RESEARCH_ID = "EX-0001"
RULES = (
    TagRule(0x0008103E, "SeriesDescription", TagAction.CLEAN),
    TagRule(0x0008103E, "SeriesDescription", TagAction.REPLACE, "_", "-"),
    TagRule(0x00100030, "PatientBirthDate", TagAction.FROM_SIDECAR, "birth_date"),
    TagRule(0x00081010, "StationName", TagAction.REMOVE),
    TagRule(0x00081030, "StudyDescription", TagAction.SET, "Oslo collaboration"),
    TagRule(0x00180015, "BodyPartExamined", TagAction.SET, "HEAD"),  # absent: added
    TagRule(0x00100010, "PatientName", TagAction.REMOVE),  # after identity sets it
    TagRule(0x00204000, "ImageComments", TagAction.REPLACE, "slice", "Slice"),
    # Added values the scan still checks: an archive UID, an archive date.
    TagRule(0x00081155, "ReferencedSOPInstanceUID", TagAction.SET, f.uid(1)),
    TagRule(0x00181012, "DateOfSecondaryCapture", TagAction.SET, "20230517"),
)
#: A rule that writes a binary value: the byte path must leave it to the reference.
BINARY_RULES = (TagRule(0x00280010, "Rows", TagAction.SET, "8"),)
SPECS = {
    f"{identity}-{dates.value}-{rules}": (identity, dates, rules)
    for identity, dates, rules in itertools.product(
        ("keep", "random"), DatesMode, ("none", "rules"))
}


class Pair:
    """A rewriter and a scanner for one spec, as a worker has them."""

    def __init__(self, identity: str, dates: DatesMode, rules: tuple[TagRule, ...],
                 archive_uids: frozenset[str]):
        random = identity == "random"
        self.rewriter = Rewriter(Rewrite(uid_key=KEY if random else None, dates=dates,
                                         date_offset=-137, rules=rules))
        self.scanner = InstanceScan(ScanRules(
            research_ids=frozenset({RESEARCH_ID, "EX-0002"}) if random else frozenset(),
            archive_uids=archive_uids if random else frozenset(),
            check_dates=dates is not DatesMode.KEEP,
            context=ReviewContext(own_values=frozenset({"OSL0007", "baseline"}),
                                  first_date="20100101", last_date="20101231"),
            spec_tags=frozenset(r.tag for r in rules
                                if r.action in (TagAction.SET, TagAction.FROM_SIDECAR))))
        self.subject = Subject(RESEARCH_ID, "OSL0007" if random else RESEARCH_ID,
                               {"birth_date": "19690212"})
        self.random = random


def _series_uids(data: bytes, random: bool) -> tuple[str, ...]:
    if not random:
        return ()
    ds = pydicom.dcmread(BytesIO(data), force=True, stop_before_pixels=True)
    return tuple(str(ds.get(k, "")) for k in ("StudyInstanceUID", "SeriesInstanceUID"))


def assert_same(inputs: list[bytes], spec: tuple[str, DatesMode, str], *,
                must_take: bool | None, rules: tuple[TagRule, ...] | None = None) -> int:
    """Both paths on every input; returns how many the byte path took (both times).

    ``must_take``: True, every input must take the byte path; False, none may; None,
    either.
    """
    identity, dates, rule_set = spec
    rules = rules if rules is not None else (RULES if rule_set == "rules" else ())
    uids = frozenset(u for data in inputs for u in _series_uids(data, True) if u)
    reference = Pair(identity, dates, rules, uids)
    fast = Pair(identity, dates, rules, uids)
    taken = 0
    # As the worker does: each instance is cut like the latest one of its size.
    seen: dict[int, ExportedInstance] = {}
    for data in inputs:
        series_uids = _series_uids(data, reference.random)
        try:
            expected = export_instance(data, "input.dcm", "P/x.dcm", reference.rewriter,
                                       reference.scanner, reference.subject, series_uids)
        except Exception:
            # Refused input (or a spec the data cannot take): never written fast.
            assert export_raw(data, "P/x.dcm", fast.rewriter, fast.scanner, fast.subject,
                              series_uids) is None
            continue
        took = 0
        for _ in range(2):  # the first time fills the memos, the second uses them
            got = export_raw(data, "P/x.dcm", fast.rewriter, fast.scanner, fast.subject,
                             series_uids, seen.get(len(data)))
            if got is None:
                assert must_take is not True, "the byte path declined a common-case file"
                got = export_instance(data, "input.dcm", "P/x.dcm", fast.rewriter,
                                      fast.scanner, fast.subject, series_uids)
            else:
                assert must_take is not False, "the byte path took a file it must decline"
                took += 1
            assert got.data == expected.data
            assert got.findings == expected.findings
            assert got.traits == expected.traits
            if got.plain is not None:
                keep_by_size(seen, len(data), got)
        taken += took == 2
    return taken


def _encoded(ds: Dataset, syntax: str) -> bytes:
    ds = copy.deepcopy(ds)
    ds.file_meta.TransferSyntaxUID = syntax
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True, implicit_vr=syntax == ImplicitVRLittleEndian,
               little_endian=syntax != ExplicitVRBigEndian)
    return out.getvalue()


def _code(value: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = f"meaning of {value}"
    return item


def _group_length(implicit: bool) -> bytes:
    header = struct.pack("<HHL", 0x0008, 0, 4) if implicit else \
        struct.pack("<HH2sH", 0x0008, 0, b"UL", 4)
    return header + struct.pack("<L", 1234)


def _with_group_lengths(data: bytes) -> bytes:
    """The file with the group lengths pydicom no longer writes: one before the data
    set's first element, one at the start of ReferencedImageSequence's item."""
    plain = parse_plain(data)
    assert plain is not None
    implicit = plain.implicit
    first = plain.elements[0]
    assert first[0] >> 16 == 0x0008
    _, _, head, start, end = plain.elements[plain.index_of[0x00081140]]
    length = struct.unpack_from("<L", data, start + 4)[0]
    assert start + 8 + length == end  # one item
    item = struct.pack("<HHL", 0xFFFE, 0xE000, length + 12) + _group_length(implicit) \
        + data[start + 8:end]
    sequence = struct.pack("<HHL", 0x0008, 0x1140, len(item)) if implicit else \
        struct.pack("<HH2sHL", 0x0008, 0x1140, b"SQ", 0, len(item))
    return b"".join((data[:first[2]], _group_length(implicit), data[first[2]:head],
                     sequence, item, data[end:]))


def _varied(n: int, charset: str | None) -> Dataset:
    """An instance of series 1 or 2 as an archive could hold it, with more kinds of
    element than the factory's own."""
    ds = f.mr_dataset(f.Instance(1, 1 + n % 2, n, RESEARCH_ID))
    if charset:
        ds.SpecificCharacterSet = charset
        ds.InstitutionName = "Sørlandet sykehus" if charset == "ISO_IR 100" else "Sørlandet 病院"
    ds.PatientName = RESEARCH_ID
    ds.StudyID = "S1"
    ds.SeriesDescription = "  t1_mprage   sag "
    ds.StationName = "MRC1"
    ds.ImageComments = f"slice {n} of {RESEARCH_ID}"
    ds.add_new(0x0008001A, "UI", [f.uid(7, 1), f.uid(7, 2)])  # multi-valued UIDs
    ds.add_new(0x00181200, "DA", ["20230101", "20230301"])  # multi-valued dates
    ds.AcquisitionDateTime = "20230517101500.000000"
    ds.add_new(0x00400275, "SQ", Sequence())  # an empty sequence
    # Differs per instance: the byte path walks its items.
    reference = Dataset()
    reference.ReferencedSOPClassUID = ds.SOPClassUID
    reference.ReferencedSOPInstanceUID = f.uid(1, 1 + n % 2, n + 1)
    reference.add_new(0x00091010, "LO", "private in an item")
    # Text where a number belongs (the review flags it), in an item and at the top level:
    # both paths find it alike, and pass over the well-formed numbers.
    reference._dict[BaseTag(0x00180050)] = RawDataElement(
        BaseTag(0x00180050), "DS", 6, b"thin\\1" if n % 2 else b"1.25\\1", 0, False, True)
    ds.ReferencedImageSequence = Sequence([reference])
    if n % 3 == 0:
        ds._dict[BaseTag(0x00180086)] = RawDataElement(BaseTag(0x00180086), "IS", 8,
                                                       b"second  ", 0, False, True)
    # Nested: an item holding a sequence, UIDs and a date.
    outer = Dataset()
    outer.StudyInstanceUID = ds.StudyInstanceUID
    outer.ProcedureCodeSequence = Sequence([_code("PROC1")])
    outer.StudyDate = "20230517"
    ds.ReferencedStudySequence = Sequence([outer])
    ds.PerformedProtocolCodeSequence = Sequence([_code("P1"), _code("P2")])
    ds.add_new(0x00290010, "LO", "RPACS TEST")
    ds.add_new(0x00291001, "LO", f"private {RESEARCH_ID}")
    ds.add_new(0x00291002, "UN", b"\x01\x02")
    # Odd lengths, as some writers leave them.
    ds._dict[BaseTag(0x00181030)] = RawDataElement(BaseTag(0x00181030), "LO", 5, b"ODD_1",
                                                   0, False, True)
    ds.PatientSex = "F"
    ds.PatientAge = "045Y"
    ds.PatientBirthDate = "19780512"
    return ds


@pytest.mark.parametrize("spec", SPECS, ids=list(SPECS))
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("charset", [None, "ISO_IR 100", "ISO_IR 192"])
def test_factory_files_give_the_reference_result(spec: str, syntax: str, charset: str | None):
    inputs = [_with_group_lengths(_encoded(_varied(n, charset), syntax))
              for n in range(1, 6)]
    assert assert_same(inputs, SPECS[spec], must_take=True) == len(inputs)


@pytest.mark.parametrize("spec", SPECS, ids=list(SPECS))
def test_files_of_several_sizes_in_any_order_give_the_reference_result(spec: str):
    """Instances of a series in three lengths, shuffled: each is cut like the latest one of
    its size, as the worker does, and still gives the reference's bytes and findings."""
    inputs = [_with_group_lengths(_encoded(_varied(n, None), ExplicitVRLittleEndian))
              for n in (1, 3, 5, 7, 9, 11, 101, 103, 105, 1001, 1003, 1005)]
    assert len({len(data) for data in inputs}) >= 3
    random.Random(7).shuffle(inputs)
    assert assert_same(inputs, SPECS[spec], must_take=True) == len(inputs)


@pytest.mark.parametrize("spec", ["keep-keep-none", "random-shift-rules", "random-remove-none"])
def test_the_demo_study_gives_the_reference_result(tmp_path: Path, spec: str):
    paths = write_mr_study(tmp_path, seed=3, n_series=3, slices=3, rows=8, cols=8)
    inputs = [p.read_bytes() for p in paths]
    assert assert_same(inputs, SPECS[spec], must_take=True) == len(inputs)


@pytest.mark.parametrize("spec", ["keep-keep-none", "random-shift-rules"])
def test_pydicom_files_give_the_reference_result(spec: str):
    inputs = [p.read_bytes() for folder in f.shipped_data_folders()
              for p in sorted(folder.rglob("*")) if p.is_file() and p.stat().st_size < 4 << 20]
    taken = assert_same(inputs, SPECS[spec], must_take=None)
    assert taken >= 80  # most of the plain little-endian files


def test_what_the_byte_path_leaves_to_the_reference():
    spec = SPECS["random-shift-none"]
    # A rule that writes a binary value, and big-endian data.
    inputs = [_encoded(_varied(1, None), ExplicitVRLittleEndian)]
    assert assert_same(inputs, spec, must_take=False, rules=BINARY_RULES) == 0
    assert assert_same([_encoded(f.mr_dataset(), ExplicitVRBigEndian)], spec,
                       must_take=False) == 0
    # Refused input: missing UIDs, a cut-off file.
    ds = f.mr_dataset()
    del ds.SOPInstanceUID
    plain = _encoded(f.mr_dataset(), ExplicitVRLittleEndian)
    assert assert_same([_encoded(ds, ExplicitVRLittleEndian), plain[:-7], plain[132:]], spec,
                       must_take=False) == 0


STUDY, SERIES = "2.25.1001", "2.25.1001.1"


def _archived(pixels: bytes, **private: bytes) -> bytes:
    """A plain instance as the archive holds one, nothing in its headers to flag, with
    binary private values (element number -> value) under one private creator."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = "2.25.1001.1.1"
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = "2.25.1001.1.1"
    ds.StudyInstanceUID = STUDY
    ds.SeriesInstanceUID = SERIES
    ds.Modality = "MR"
    ds.PatientID = RESEARCH_ID
    ds.StudyDate = "20100601"
    ds.BitsAllocated = 16
    if private:
        ds.add_new(0x00290010, "LO", "RPACS TEST")
        for number, value in private.items():
            ds.add_new(0x00291000 | int(number[1:], 16), "OB", value)
    ds.PixelData = pixels
    return _encoded(ds, ExplicitVRLittleEndian)


def test_the_byte_search_reads_headers_and_private_values_but_not_the_pixels():
    """Where the two paths part on purpose: the byte path's search for archive UIDs and
    research IDs leaves out a Pixel Data copied unchanged (rpacs never wrote text there),
    and still finds them in binary private values, which no element scan reads as text."""
    pair = Pair("random", DatesMode.KEEP, (), frozenset({STUDY, SERIES}))
    # The StudyID the export derives is the project's own value, as the service has it.
    rules = pair.scanner.rules
    own = rules.context.own_values | {pair.rewriter.rewrite.study_id(STUDY, "")}
    pair.scanner = InstanceScan(dataclasses.replace(
        rules, context=dataclasses.replace(rules.context, own_values=own)))
    coincidence = b"\x00\x01" * 64 + RESEARCH_ID.encode() + b"\x00" * 9
    data = _archived(coincidence)
    uids = _series_uids(data, True)
    got = export_raw(data, "P/x.dcm", pair.rewriter, pair.scanner, pair.subject, uids)
    assert got is not None and got.findings == []
    assert coincidence in got.data  # the pixels themselves are copied untouched
    reference = export_instance(data, "in.dcm", "P/x.dcm", pair.rewriter, pair.scanner,
                                pair.subject, uids)
    assert [x.tag for x in reference.findings] == ["(file bytes)"]

    data = _archived(b"\x00" * 128, x10=b"\x07" + RESEARCH_ID.encode() + b"\x00",
                     x11=b"\x01" + SERIES.encode() + b"\x00")
    got = export_raw(data, "P/x.dcm", pair.rewriter, pair.scanner, pair.subject, uids)
    assert got is not None
    assert {(x.tag, x.reason) for x in got.findings} == {
        ("(file bytes)", "research participant ID"), ("(file bytes)", "archive UID")}


def test_the_worker_keeps_a_few_sizes_the_latest_first():
    """Each kept file holds its bytes: at most 8 sizes, the latest, and 64 MiB of files."""
    seen: dict[int, ExportedInstance] = {}
    slim = ExportedInstance((), [], {})
    for size in range(1, 11):
        keep_by_size(seen, size, slim)
    assert list(seen) == [3, 4, 5, 6, 7, 8, 9, 10]
    keep_by_size(seen, 5, slim)  # seen again: now the latest
    assert list(seen)[-1] == 5 and len(seen) == 8
    keep_by_size(seen, 60 * 1024 * 1024, slim)
    keep_by_size(seen, 5 * 1024 * 1024, slim)  # both would pass 64 MiB: the older goes
    assert list(seen) == [5 * 1024 * 1024]


def _rewritten(ds: Dataset, *rules: TagRule) -> Dataset:
    Rewriter(Rewrite(uid_key=None, dates=DatesMode.KEEP, date_offset=0, rules=rules)).apply(
        ds, Subject("EX-0001", "EX-0001"))
    return ds


def test_a_rule_value_the_declared_character_set_cannot_hold_is_an_error():
    comments = TagRule(0x00204000, "ImageComments", TagAction.SET, value="cœur")
    ds = f.mr_dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    with pytest.raises(InvalidInputError) as caught:
        _rewritten(ds, comments)
    assert str(caught.value) == (
        "tags: ImageComments: the files declare the character set ISO_IR 100, which cannot "
        "hold the character U+0153 of its new value; write it in ASCII, or with clean: true")
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8 holds it
    assert _rewritten(ds, comments).ImageComments == "cœur"
    # Sets switched by ISO 2022 escapes: rpacs does not write them.
    ds = f.mr_dataset()
    ds.SpecificCharacterSet = ["ISO 2022 IR 6", "ISO 2022 IR 87"]
    with pytest.raises(InvalidInputError, match="ISO 2022 IR 6\\\\ISO 2022 IR 87"):
        _rewritten(ds, comments)


@pytest.mark.parametrize("declared", [None, "", "ISO_IR 6"])
def test_the_default_repertoire_declares_what_a_rule_value_needs(declared):
    ds = f.mr_dataset()
    if declared is not None:
        ds.SpecificCharacterSet = declared
    ds = _rewritten(ds, TagRule(0x00081030, "StudyDescription", TagAction.SET, value="Ærø"))
    written = pydicom.dcmread(BytesIO(write_instance(ds)))
    assert written.SpecificCharacterSet == "ISO_IR 100"
    assert written.StudyDescription == "Ærø"


def test_bytes_the_files_own_set_did_not_decode_go_back_as_they_were():
    ds = f.mr_dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds["SeriesDescription"] = RawDataElement(BaseTag(0x0008103E), "LO", 8, b"T2 \xff_ax ",
                                             0, False, True)
    rule = TagRule(0x0008103E, "SeriesDescription", TagAction.REPLACE, value="_",
                   replacement="-")
    written = write_instance(_rewritten(ds, rule))
    assert b"T2 \xff-ax" in written


@pytest.mark.parametrize("charset", [b"ISO 2022 IR 100", b"\\ISO 2022 IR 100", b"ISO-IR 100"])
def test_a_set_python_cannot_name_gives_its_own_letters_back(charset):
    """Read byte for byte (as Latin-1), a value's own letters go back as they came; only a
    new non-ASCII letter would be an error."""
    ds = _with_charset(f.mr_dataset(), charset)
    ds["SeriesDescription"] = RawDataElement(BaseTag(0x0008103E), "LO", 10, b"T2_\xc5lesund",
                                             0, False, True)
    rule = TagRule(0x0008103E, "SeriesDescription", TagAction.REPLACE, value="_",
                   replacement="-")
    assert b"T2-\xc5lesund" in write_instance(_rewritten(ds, rule))
    new = TagRule(0x00204000, "ImageComments", TagAction.SET, value="Å")
    with pytest.raises(InvalidInputError, match="U\\+00C5"):
        _rewritten(_with_charset(f.mr_dataset(), charset), new)


def _with_charset(ds: Dataset, charset: bytes) -> Dataset:
    ds["SpecificCharacterSet"] = RawDataElement(BaseTag(0x00080005), "CS", len(charset),
                                                charset, 0, False, True)
    return ds
