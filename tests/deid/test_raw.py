"""The byte-level path gives the reference path's bytes, index fields and tag inventory.

Differential: every input goes through the reference path (read_instance, deidentify,
write_instance) with one Deidentifier and through :func:`deidentify_raw` with another, twice
(the second time from its memo, as the later files of a series are), and the outputs must
be equal byte for byte. Where the byte path declines, the test says so: the factory's and
the demo's files must take it, pydicom's files that it takes are counted, and big-endian and
deflated files must be left to the reference path.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread
from pydicom.filebase import DicomBytesIO
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from rpacs.deid import (
    Deidentifier,
    Identity,
    Option,
    Profile,
    TagOverride,
    deidentify_raw,
    parse_plain,
    raw,
    read_instance,
    write_instance,
)
from rpacs.demo import write_mr_study
from rpacs.errors import RpacsError
from rpacs.ingest.worker import _INDEX_TAGS, _fast_fields, _fields, _text, inventory_groups
from rpacs.review import TagEntry, file_meta_entries, tag_entries, written_groups
from rpacs.review import entries as review_entries

from .. import dicom_factory as f

SECRET = b"\x17" * 32
IDENTITY = Identity("P-0042", "DIFF", "baseline")
PROFILES = {
    "default": Profile.default(),
    "basic": Profile.basic(),
    "retaining": Profile(options=frozenset({Option.RETAIN_UIDS,
                                            Option.RETAIN_LONGITUDINAL_FULL_DATES,
                                            Option.RETAIN_PATIENT_CHARACTERISTICS})),
    "overrides": Profile(overrides=(
        TagOverride(0x00081030, "set", value="STUDY SET BY PROJECT"),
        TagOverride(0x00081010, "keep"),
        TagOverride(0x0008103E, "regex-keep", pattern=r"t[12]\w*"),
        TagOverride(0x00200052, "remove"),
        TagOverride(0x00081140, "empty"),
        TagOverride(0x00180015, "set", value="HEAD"),  # absent from the input: added
    )),
}


def _reference(data: bytes, engine: Deidentifier) -> tuple[bytes, Dataset, str]:
    ds = read_instance(data, "input.dcm")
    patient_id = _text(ds, "PatientID")  # as the worker reads it for the keyed hash
    engine.deidentify(ds)
    return write_instance(ds), ds, patient_id


def _uncached_entries(ds: Dataset) -> set:
    """The reference's tag inventory entries computed afresh (the cache of earlier files
    set aside, so that the byte path's entries, from the warm cache, are checked by it)."""
    warm = dict(review_entries._ELEMENT_ENTRIES)
    review_entries._ELEMENT_ENTRIES.clear()
    try:
        return tag_entries(ds)
    finally:
        review_entries._ELEMENT_ENTRIES.clear()
        review_entries._ELEMENT_ENTRIES.update(warm)


def _as_written(entries: set, data: bytes) -> set:
    """``entries`` with the file meta's group length that the file ``data`` holds: the
    data set keeps the original file's, which the de-identified UIDs' lengths change."""
    written = dcmread(DicomBytesIO(data), stop_before_pixels=True).file_meta
    length = TagEntry("00020000", "FileMetaInformationGroupLength", "UL",
                      str(written.FileMetaInformationGroupLength))
    return {e for e in entries if e.tag_path != "00020000"} | {length}


def _texts(ds: Dataset, syntax: str | None = None) -> dict[str, str]:
    """Index-like values of ``ds``; the transfer syntax its file meta's, or ``syntax``."""
    fields = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID",
              "StudyID", "StudyDate", "Modality", "SeriesNumber", "InstanceNumber", "Rows")
    return {k: str(ds.get(k, "")) for k in fields} | {
        "syntax": str(ds.file_meta.get("TransferSyntaxUID", "")) if syntax is None
        else syntax}


def assert_same(inputs: list[bytes], profile: Profile, *, must_take: bool) -> int:
    """Both paths on every input; returns how many the byte path took."""
    reference = Deidentifier(profile, SECRET, IDENTITY, -45)
    fast = Deidentifier(profile, SECRET, IDENTITY, -45)
    taken = 0
    for data in inputs:
        try:
            expected, ds, patient_id = _reference(data, reference)
            # Once: converting values resolves ambiguous VRs in place ("US or SS").
            entries = _as_written(_uncached_entries(ds), expected)
            fields = _fields(ds)  # the index fields, as the worker reads them
        except RpacsError:
            assert deidentify_raw(data, fast) is None  # refused input: never written fast
            continue
        for _ in range(2):  # the first time fills the memo, the second uses it
            result = deidentify_raw(data, fast)
            if result is None:
                assert not must_take, "the byte path declined a common-case file"
                break
            assert result.data == expected
            # As the import's workers group them (reusing what the files of a layout write
            # alike, the file meta's template included: taken before anything makes the
            # file meta), and as written.
            worker_groups = inventory_groups(result)
            out = result.dataset()
            assert _as_written(tag_entries(out), result.data) == entries
            for groups in (worker_groups, written_groups(
                    file_meta_entries(result.file_meta), result.written(), result.subset)):
                assert set().union(*groups) == entries
                # Groups share no tag path: the inventory counts an instance by groups.
                paths = [{e.tag_path for e in group} for group in groups]
                assert sum(map(len, paths)) == len(set().union(*paths))
            assert _texts(out) == _texts(ds)
            assert _texts(result.subset([*_INDEX_TAGS, 0x0020000D, 0x0020000E, 0x00080018]),
                          str(result.file_meta.get("TransferSyntaxUID", ""))) == _texts(ds)
            assert _text(result.original(), "PatientID") == patient_id
            assert _fast_fields(result) == fields
            for tag in (0x0020000D, 0x0020000E, 0x00080018):
                assert result.text(tag) == str(ds[tag].value)
        else:
            taken += 1
    return taken


def _varied(n: int) -> Dataset:
    """The factory's instance with more kinds of element than it has by default."""
    ds = f.mr_dataset(f.Instance(1, 1 + n % 2, n))
    ds.add_new(0x00080000, "UL", 1234)  # a group length: dropped
    ds.add_new(0x00181310, "US", [0, 256, 256, 0])
    ds.add_new(0x00209165, "AT", 0x00200032)
    ds.add_new(0x00189089, "FD", [0.0, 1.0, 0.5])
    ds.add_new(0x00189096, "FD", 3.5)
    ds.add_new(0x00400275, "SQ", Sequence())  # an empty sequence
    ds.add_new(0x00081250, "SQ", Sequence([Dataset()]))
    ds.add_new(0x00111001, "UN", b"\x01\x02")  # a private element without creator
    ds.add_new(0x00290011, "LO", "SIEMENS MEDCOM HEADER")
    ds.add_new(0x00291131, "LO", "Testesen private")
    item = Dataset()
    item.PatientID = f.PATIENT_ID
    item.CodeMeaning = "nested Testesen"
    ds.add_new(0x00190010, "LO", "SIEMENS MR HEADER")
    ds.add_new(0x00191008, "CS", "IMAGE NUM 4")
    ds.OtherPatientIDsSequence = Sequence([item])
    ds.ContentSequence = Sequence([copy.deepcopy(item)])
    ds.InstitutionalDepartmentName = "Radiology " + f.BIRTH_DATE
    ds.AdditionalPatientHistory = "Called 22334455 on 12.05.1978 " * 3
    ds.SliceLocation = str(n * 1.5)
    ds.ImageComments = f"Slice {n} of Testesen"
    return ds


@pytest.mark.parametrize("profile", PROFILES, ids=list(PROFILES))
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("charset", [None, "ISO_IR 100", "ISO_IR 192"])
def test_factory_files_give_the_reference_bytes(profile: str, syntax: str,
                                                charset: str | None):
    inputs = []
    for n in range(1, 5):
        ds = _varied(n)
        if charset:
            ds.SpecificCharacterSet = charset
            ds.PatientName = "Østby^Åse" if charset == "ISO_IR 100" else "Østby^Åse^李"
        inputs.append(f.encoded(ds, syntax))
    assert assert_same(inputs, PROFILES[profile], must_take=True) == len(inputs)


def test_the_demo_study_gives_the_reference_bytes(tmp_path: Path):
    paths = write_mr_study(tmp_path, seed=3, n_series=4, slices=3, rows=8, cols=8)
    inputs = [p.read_bytes() for p in paths]
    for profile in PROFILES.values():
        assert assert_same(inputs, profile, must_take=True) == len(inputs)


def test_pydicom_files_give_the_reference_bytes():
    inputs = [p.read_bytes() for folder in f.shipped_data_folders()
              for p in sorted(folder.rglob("*")) if p.is_file() and p.stat().st_size < 4 << 20]
    taken = assert_same(inputs, Profile.default(), must_take=False)
    assert taken >= 80  # 112 of 238 in pydicom 3.0 + pydicom-data: most plain LE files


@pytest.mark.parametrize("syntax", [ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian])
def test_big_endian_and_deflated_files_take_the_reference_path(syntax: str):
    data = f.encoded(f.mr_dataset(), syntax)
    engine = Deidentifier(Profile.default(), SECRET, IDENTITY, -45)
    assert deidentify_raw(data, engine) is None
    assert _reference(data, engine)[0]  # and the reference path writes them


def test_odd_files_take_the_reference_path():
    engine = Deidentifier(Profile.default(), SECRET, IDENTITY, -45)
    plain = f.encoded(f.mr_dataset(), ExplicitVRLittleEndian)
    no_preamble = plain[132:]
    truncated = plain[:-7]
    assert deidentify_raw(no_preamble, engine) is None
    assert deidentify_raw(truncated, engine) is None
    ds = f.mr_dataset()
    del ds.SOPInstanceUID
    assert deidentify_raw(f.encoded(ds, ExplicitVRLittleEndian), engine) is None
    ds = f.mr_dataset()
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]  # needs pydicom's decoder
    assert deidentify_raw(f.encoded(ds, ExplicitVRLittleEndian), engine) is None


def _slice(n: int, *, name: str = "Testesen^Kari", comment_digits: int = 2) -> Dataset:
    """Slice ``n`` of one series, laid out alike for every ``n`` (values of fixed length),
    differing in its UIDs, numbers, times, a per-slice reference, a kept private value
    and a comment holding the patient's name."""
    ds = f.mr_dataset(f.Instance(1, 1, 10 + n))
    ds.PatientName = name
    ds.InstanceNumber = f"{10 + n}"
    ds.SliceLocation = f"{n:.1f}".rjust(6, "0")
    ds.ContentTime = f"1015{n:02d}"
    ds.ImageComments = f"slice {n:0{comment_digits}d} of Testesen"
    reference = Dataset()
    reference.ReferencedSOPClassUID = ds.SOPClassUID
    reference.ReferencedSOPInstanceUID = f.uid(1, 1, 20 + n)
    ds.ReferencedImageSequence = Sequence([reference])
    ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
    ds.add_new(0x00291010, "OB", b"SV10\x04\x03\x02\x01" + bytes([n]) * 8)
    return ds


def _count_cuts(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """A list that records, for each file compared with a layout alike, whether it was cut
    from it (True) or declined and walked whole (False)."""
    taken: list[bool] = []
    like = raw._Run.like

    def counted(self: raw._Run, layout: raw._Layout, changed: list[int]) -> object:
        result = like(self, layout, changed)
        taken.append(result is not None)
        return result

    monkeypatch.setattr(raw._Run, "like", counted)
    return taken


@pytest.mark.parametrize("profile", PROFILES, ids=list(PROFILES))
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_the_files_of_a_series_are_walked_where_they_differ(
        profile: str, syntax: str, monkeypatch: pytest.MonkeyPatch):
    """After the first file of a series only its differing elements are walked (the rest
    keep the first's decisions); a file laid out otherwise — a value of another length,
    another patient — is walked whole. The bytes are the reference's either way."""
    taken = _count_cuts(monkeypatch)
    # The inventory of a file cut from a layout reuses one group for all it writes alike.
    sizes: list[tuple[int, int]] = []
    worker_groups = inventory_groups

    def grouped(result: raw.RawResult) -> object:
        groups = worker_groups(result)
        sizes.append((len(groups), len(written_groups(
            file_meta_entries(result.file_meta), result.written(), result.subset))))
        return groups

    monkeypatch.setitem(globals(), "inventory_groups", grouped)
    # And its index fields those of the layout's first such file, but for the elements
    # decided again: their encoding is not read again.
    encodings: list[bool] = []
    encoding = raw.RawResult.encoding

    def read_encoding(self: raw.RawResult) -> object:
        encodings.append(True)
        return encoding(self)

    monkeypatch.setattr(raw.RawResult, "encoding", read_encoding)
    inputs = [f.encoded(_slice(n), syntax) for n in range(1, 6)]
    inputs.append(f.encoded(_slice(6, comment_digits=3), syntax))  # another length
    # Laid out as the one before, but another patient: the context of every value.
    inputs.append(f.encoded(_slice(7, name="Testesen^Kira", comment_digits=3), syntax))
    assert assert_same(inputs, PROFILES[profile], must_take=True) == len(inputs)
    # Each input goes through twice, the second time as an exact repeat. The first file
    # and the longer comment find no layout alike; the other patient finds one, which
    # declines; each then leaves its own for its repeat.
    assert (taken.count(True), taken.count(False)) == (1 + 2 * 4 + 1 + 1, 1)
    assert sum(few < many for few, many in sizes) >= 4
    assert len(encodings) <= len(sizes) - 4


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_files_of_two_sizes_in_turn_each_follow_their_own_size(
        syntax: str, monkeypatch: pytest.MonkeyPatch):
    """A series whose files come in two lengths (a value written with a digit more in
    every other file) keeps a layout per length: after the first file of each, every file
    is cut from its own length's layout instead of being walked whole."""
    taken = _count_cuts(monkeypatch)
    inputs = [f.encoded(_slice(n, comment_digits=2 + n % 2), syntax) for n in range(1, 9)]
    assert len({len(data) for data in inputs}) == 2
    assert assert_same(inputs, PROFILES["default"], must_take=True) == len(inputs)
    # Each input twice (assert_same repeats it): 16 files, the first of each length
    # walked whole, every other cut from its length's layout.
    assert taken == [True] * (2 * len(inputs) - 2)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_parse_plain_follows_the_previous_file_where_it_lies_out_alike(syntax: str):
    """The export's cut of each file: from the previous file's where the two lie out alike
    (the same element list, values read from the new bytes), afresh where they do not;
    equal to a fresh cut either way."""
    first, alike, longer = (f.encoded(ds, syntax) for ds in (
        _slice(1), _slice(2), _slice(3, comment_digits=3)))
    plain = parse_plain(first)
    assert plain is not None
    followed = parse_plain(alike, plain)
    assert followed is not None and followed.elements is plain.elements
    fresh = parse_plain(alike)
    assert fresh is not None
    assert (followed.elements, followed.index_of, followed.implicit) == (
        fresh.elements, fresh.index_of, fresh.implicit)
    assert {t: (e.VR, e.value, e.value_tell) for t, e in followed.meta.items()} == \
        {t: (e.VR, e.value, e.value_tell) for t, e in fresh.meta.items()}
    assert followed.meta[0x00020003].value != plain.meta[0x00020003].value
    other = parse_plain(longer, plain)
    assert other is not None and other.elements is not plain.elements
    assert other.elements == parse_plain(longer).elements


def test_a_file_alike_but_for_its_dicm_prefix_is_cut_afresh():
    """The comparison with the previous file starts at the "DICM" prefix, not after it."""
    first, second = (f.encoded(_slice(n), ExplicitVRLittleEndian) for n in (1, 2))
    plain = parse_plain(first)
    assert plain is not None and plain.shape is not None
    assert plain.shape.changed(second) is not None
    assert plain.shape.changed(second[:128] + b"DICX" + second[132:]) is None
    assert parse_plain(second[:128] + b"DICX" + second[132:], plain) is None


def test_changed_names_the_differing_values_and_refuses_other_layouts():
    """Positions of the elements whose values differ; None where a header, the file meta
    beyond the instance's UID, or a large element's header differs. The preamble, never
    read, may differ freely."""
    first = f.encoded(_slice(1), ExplicitVRLittleEndian)
    plain = parse_plain(first)
    assert plain is not None and plain.shape is not None
    shape = plain.shape
    assert shape.changed(first) == list(shape.tail)
    assert shape.changed(b"\x01" * 128 + first[128:]) == list(shape.tail)

    def at(tag: int) -> tuple[int, int, int]:
        i = plain.index_of[tag]
        _, _, head, start, _ = plain.elements[i]
        return i, head, start

    i, head, start = at(0x00200013)  # InstanceNumber: one byte of its value
    other = bytearray(first)
    other[start] ^= 0x01
    j, _, start_j = at(0x00080018)  # and the SOPInstanceUID's last bytes
    other[start_j + 5:start_j + 7] = b"99"
    assert shape.changed(bytes(other)) == [*sorted({i, j}), *shape.tail]
    header = bytearray(first)
    header[head] ^= 0x01  # the element's tag
    assert shape.changed(bytes(header)) is None
    syntax = plain.meta[0x00020010]
    meta = bytearray(first)
    meta[syntax.value_tell] ^= 0x01  # the transfer syntax: another file meta
    assert shape.changed(bytes(meta)) is None
    uid = plain.meta[0x00020003]
    own = bytearray(first)
    own[uid.value_tell + uid.length - 2] ^= 0x01  # the file meta's own instance UID: free
    assert shape.changed(bytes(own)) == list(shape.tail)
    if len(shape.tail) > 1:
        _, _, tail_head, _, _ = plain.elements[shape.tail[1]]
        late = bytearray(first)
        late[tail_head] ^= 0x01
        assert shape.changed(bytes(late)) is None
    assert shape.changed(first + b"\x00\x00") is None  # another length


def test_the_kept_file_meta_bytes_are_those_the_writer_writes():
    """write_plain's file meta, kept around each instance's UID, against the writer's, as
    metas that share all else come one after another (so that a kept one is used)."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import BaseTag

    from rpacs.deid.io import _file_meta_bytes
    from rpacs.deid.raw import _plain_meta_bytes

    def element(tag: int, vr: str | None, value: bytes) -> RawDataElement:
        return RawDataElement(BaseTag(tag), vr, len(value), value, 0, False, True)

    def meta(uid: bytes, vr: str | None = "UI", version: bool = True,
             order: int = 1) -> dict[BaseTag, RawDataElement]:
        elements = [element(0x00020002, "UI", b"1.2.840.10008.5.1.4.1.1.4\x00"),
                    element(0x00020003, vr, uid),
                    element(0x00020010, "UI", b"1.2.840.10008.1.2.1\x00"),
                    element(0x00020012, "UI", b"1.2.3.4\x00")]
        if version:
            elements.insert(0, element(0x00020001, "OB", b"\x00\x01"))
        return {e.tag: e for e in elements[::order]}

    def reference(given: dict[BaseTag, RawDataElement]) -> bytes | str:
        header = Dataset()
        header._dict = dict(given)
        try:
            return _file_meta_bytes(header)
        except ValueError as exc:
            return str(exc)

    def kept(given: dict[BaseTag, RawDataElement]) -> bytes | str:
        try:
            return _plain_meta_bytes(given)
        except ValueError as exc:
            return str(exc)

    for given in (meta(b"2.25.1234"), meta(b"2.25.5678"),  # the second from the kept bytes
                  meta(b"2.25.5678", vr="LO"), meta(b"2.25.5678", vr=None),
                  meta(b"2.25.5678", vr="UN"), meta(b"2.25.56789\x00"), meta(b"2.25.99\x00"),
                  meta(b"2.25.5678", version=False), meta(b"2.25.1111", version=False),
                  meta(b"2.25.5678", order=-1), meta(b"2.25.1111", order=-1),
                  meta(b"        "), meta(b""), meta(b"2.25.1234")):
        assert kept(given) == reference(given), given
