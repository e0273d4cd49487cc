"""Review: the tag inventory's entries and counts, the flags, and a review of 100,000 instances
that reads only the index."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread
from pydicom.dataelem import RawDataElement
from pydicom.sequence import Sequence
from pydicom.uid import ImplicitVRLittleEndian, MRImageStorage
from sqlalchemy import func, insert, select, update

from rpacs.db import Participant, Project, Study, TagInventory, TagValue
from rpacs.installation import Installation
from rpacs.projects import ProjectSpec, create_project
from rpacs.review import (
    ReviewContext,
    TagEntry,
    add_to_inventory,
    review_project,
    tag_entries,
    value_flags,
)
from rpacs.review import service as review_service
from rpacs.review.content import VALUE_LENGTH
from rpacs.review.entries import EXCERPT_MARK, kept_text
from rpacs.settings import Settings

from . import dicom_factory as f
from .conftest import PROJECT

INSTANCES = 100_000
CSA = TagEntry("00291010@SIEMENS CSA HEADER", "[CSA Image Header Info]@SIEMENS CSA HEADER",
               "OB", "")


def _project_id(inst: Installation, acronym: str = "TESTPROJ") -> int:
    with inst.db.session() as session:
        return session.scalar(select(Project.id).where(Project.acronym == acronym))


def _add_studies(inst: Installation, project_id: int, dates: list[str]) -> None:
    """One participant (TP-0000, TP-0001...) and one study per date, as an import makes."""
    with inst.db.session() as session:
        session.execute(insert(Participant), [
            {"project_id": project_id, "research_id": f"TP-{n:04d}"} for n in range(len(dates))])
        ids = dict(session.execute(select(Participant.research_id, Participant.id)).all())
        session.execute(insert(Study), [
            {"project_id": project_id, "participant_id": ids[f"TP-{n:04d}"], "event": "baseline",
             "study_uid": f"2.25.{n}", "study_id": f"{n:016d}", "study_date": date,
             "patient_key": f"{n:064x}"}
            for n, date in enumerate(dates)])


def test_entries_name_paths_keywords_and_values():
    ds = f.mr_dataset()
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M"]
    ds.PixelSpacing = [0.5, 0.75]
    ds.ImageComments = "x" * 300
    entries = tag_entries(ds)
    assert {
        TagEntry("00081140", "ReferencedImageSequence", "SQ", ""),
        TagEntry("00081140/00081155", "ReferencedImageSequence>ReferencedSOPInstanceUID", "UI",
                 f.uid(1, 1, 1001)),
        TagEntry("00290010", "PrivateCreator", "LO", "SIEMENS CSA HEADER"),
        CSA,
        TagEntry("00091001@ACME PRIVATE", "(0009,1001)@ACME PRIVATE", "LO",
                 "Testesen Ola private note"),
        TagEntry("00020010", "TransferSyntaxUID", "UI", "1.2.840.10008.1.2.1"),
        TagEntry("00080008", "ImageType", "CS", "ORIGINAL\\PRIMARY\\M"),
        TagEntry("00280030", "PixelSpacing", "DS", "0.5\\0.75"),
        TagEntry("00204000", "ImageComments", "LT", "x" * 128),
        TagEntry("7FE00010", "PixelData", "OW", ""),
        TagEntry("00100010", "PatientName", "PN", f.PATIENT_NAME),
    } <= entries


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_entries_of_files_match_the_dataset_and_never_read_binary_values(tmp_path, implicit):
    ds = f.mr_dataset()
    if implicit:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    path = f.write(ds, tmp_path / "a.dcm")
    read = dcmread(path)
    from_file = tag_entries(read)
    assert isinstance(read._dict[0x7FE00010], RawDataElement), "PixelData was decoded"
    assert isinstance(read._dict[0x00291010], RawDataElement), "the CSA header was decoded"
    in_memory = {e for e in tag_entries(ds) if not e.tag_path.startswith("0002")}
    on_disk = {e for e in from_file if not e.tag_path.startswith("0002")}
    unknown_private = {e for e in in_memory if e.tag_path.startswith("00091001")}
    if implicit:  # an unknown private element has no VR without one in the file: never read
        assert TagEntry("00091001@ACME PRIVATE", "(0009,1001)@ACME PRIVATE", "UN", "") in on_disk
        on_disk = {e for e in on_disk if not e.tag_path.startswith("00091001")}
        in_memory -= unknown_private
    assert on_disk == in_memory
    assert CSA in on_disk


def test_inventory_counts_each_path_and_value_once_per_instance(installation, make_project):
    make_project()
    project_id = _project_id(installation)
    first, second = f.mr_dataset(), f.mr_dataset(f.Instance(number=2))
    for ds in (first, second):
        item = Dataset()
        item.ReferencedSOPClassUID = MRImageStorage
        item.ReferencedSOPInstanceUID = f.uid(9, 9, 9)
        ds.ReferencedImageSequence.append(item)  # two items: a path met twice per instance
    with installation.db.session() as session:
        add_to_inventory(session, project_id, [(frozenset(tag_entries(first)),)])
        # The same instance's entries split in groups (each path in one of them).
        entries = sorted(tag_entries(second))
        add_to_inventory(session, project_id, [(frozenset(entries[:10]),
                                                frozenset(entries[10:]))])
    rows = {r.keyword_path: r for r in review_project(installation, "TESTPROJ")}
    nested = rows["ReferencedImageSequence>ReferencedSOPInstanceUID"]
    assert (nested.n_instances, nested.n_distinct) == (2, 3)
    assert nested.top_values[0] == (f.uid(9, 9, 9), 2)
    assert rows["ReferencedImageSequence>ReferencedSOPClassUID"].top_values == [
        (MRImageStorage, 2)]
    assert rows["SOPInstanceUID"].n_distinct == 2
    assert rows["PatientName"].top_values == [(f.PATIENT_NAME, 2)]
    assert rows["PatientName"].flags == ["person name"]  # not a participant of the project
    assert rows["PixelData"].top_values == [("", 2)] and rows["PixelData"].flags == []
    assert rows["[CSA Image Header Info]@SIEMENS CSA HEADER"].tag == \
        "(0029,1010)@SIEMENS CSA HEADER"
    assert rows["ImageComments"].flags == ["free text with capitalised words (names?)"]
    assert "looks like a street address" in rows["PatientAddress"].flags
    assert rows["(0009,1001)@ACME PRIVATE"].flags
    assert rows["Modality"].flags == [] and rows["SeriesDescription"].flags == []


CONTEXT = ReviewContext(frozenset({"TP-0001", "baseline", "TESTPROJ", "0123456789012345"}),
                        "20200101", "20201231")


@pytest.mark.parametrize(("keyword", "vr", "value", "flagged"), [
    ("PatientName", "PN", "TP-0001", False),
    ("ReferringPhysicianName", "PN", "baseline", False),
    ("OperatorsName", "PN", "ANONYMOUS", False),
    ("OperatorsName", "PN", "Hansen^Kari", True),
    ("OperatorsName", "PN", "TP-0001\\Hansen^Kari", True),
    ("PatientID", "LO", "TP-0001", False),
    ("PatientID", "LO", "X", True),
    ("StudyID", "SH", "0123456789012345", False),
    ("InstitutionName", "LO", "TESTPROJ", False),
    ("StudyDate", "DA", "20200615", False),
    ("StudyDate", "DA", "20191231", False),
    ("InstanceCreationDate", "DA", "20210130", False),  # made weeks after its study
    ("SeriesDate", "DA", "20191202", False),  # 30 days either side
    ("StudyDate", "DA", "20191201", True),
    ("StudyDate", "DA", "20210131", True),
    ("AcquisitionDateTime", "DT", "20230517101500", True),
    ("ContentDate", "DA", "19000101", False),  # the de-identifier's dummy
    ("CalibrationDate", "DA", "20200601\\19780512", True),
    ("SOPInstanceUID", "UI", "2.25.123456789012345", False),
    ("SliceLocation", "DS", "1234567.5", False),
    ("ImageComments", "LT", "call 55 97 50 00", True),
    ("ImageComments", "LT", "ref 12345678", True),
    ("DerivationDescription", "ST", "compression ratio 0.084906", False),
    ("DerivationDescription", "ST", "ratio 0.08490612345 or 12.1234567", False),
    ("ImageComments", "LT", "seen 1234567.5 mm away", True),
    ("ImageComments", "LT", "from study 1.2.3.604688119", True),  # a UID typed into text
    ("ImageComments", "LT", "ref.123456", True),
    ("ImageComments", "LT", "mail ola@example.org", True),
    ("ImageComments", "LT", "Patient Testesen scanned today", True),
    ("ImageComments", "LT", "Patient *** *** scanned. Fine.", False),
    ("ImageComments", "LT", "Bor i Storgata 12", True),
    ("SeriesDescription", "LO", "t1 mprage sag Ola", False),
    ("SeriesDescription", "LO", "t1 mprage 20230517", True),
    ("ScanOptions", "CS", "PFP\\12345678", False),
    ("SoftwareVersions", "LO", "syngo MR E11 20180830", False),
    ("SeriesDescription", "LO", "DTI 30dir b 0 1000 2000", False),  # b-values
    ("PatientWeight", "DS", "72.5", False),
    ("SliceThickness", "DS", " 1.5e-1", False),
    ("ImagePositionPatient", "DS", "-115.0\\-115.0\\-194.5", False),
    ("PatientWeight", "DS", "Zebulonsen", True),
    ("InstanceNumber", "IS", "12", False),
    ("InstanceNumber", "IS", "1.0", False),  # not PS3.5's, but common, and a number
    ("PatientWeight", "DS", "72,5", True),
    ("InstanceNumber", "IS", "Quintilia", True),
    ("StudyTime", "TM", "101502.123", False),
    ("StudyTime", "TM", "10:15:02", False),  # ACR-NEMA
    ("StudyTime", "TM", "Zebulonsen", True),
    ("PatientAge", "AS", "045Y", False),
    ("PatientAge", "AS", "Zebulonsen", True),
    ("SeriesDescription", "LO", "ring 22 11 88 44", True),
    ("SoftwareVersions", "LO", "mail staff.person@hosp.no", True),  # typed, not written
    ("ManufacturerModelName", "LO", "Skyra, Kirkeveien 166", True),
])
def test_flags(keyword, vr, value, flagged):
    assert bool(value_flags(keyword, vr, value, CONTEXT)) is flagged


@pytest.mark.parametrize(("keyword", "vr", "value"), [
    ("SliceThickness", "DS", "1" * 100_000 + "x"),  # was minutes: \d+\.?\d* backtracked
    ("ImageComments", "LT", "a" * 200_000),  # was minutes: an e-mail tried at every letter
    ("ImageComments", "UT", "a." * 100_000 + "@"),
])
def test_a_long_malformed_value_is_judged_without_catastrophic_backtracking(keyword, vr,
                                                                            value):
    """Not a timing test: linear time takes milliseconds here, the old patterns took
    minutes to hours; the alarm only stops a run that would otherwise hang."""
    import signal

    def hung(*_: object) -> None:
        raise TimeoutError(f"value_flags on {len(value)} characters of {vr} did not end")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    try:
        value_flags(keyword, vr, value, CONTEXT)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_no_date_flags_before_any_study_is_stored():
    empty = ReviewContext(frozenset(), "", "")
    assert value_flags("StudyDate", "DA", "20230517", empty) == []


def _leaks_among_common_values() -> list[tuple[frozenset[TagEntry]]]:
    """15 instances whose leaked values are neither among the most nor the least frequent
    (counts 5, 4, *3*, 2, 1), except the free-text one, which is the rarest."""
    counts = (5, 4, 3, 2, 1)
    names = ("TP-0000", "TP-0001", "Nordmann^Ola", "TP-0002", "TP-0003")
    dates = ("20200101", "20200601", "20200101\\19780512", "20201231", "20200301")
    texts = ("ok a", "ok b", "ok c", "ok d", "Seen by Dr Hansen today")
    weights = ("72.5", "8.0E1", "Ærø", "65", "70")  # a name typed into a number
    return [
        (frozenset({TagEntry("00100010", "PatientName", "PN", name),
                    TagEntry("00080022", "AcquisitionDate", "DA", date),
                    TagEntry("00204000", "ImageComments", "LT", text),
                    TagEntry("00101030", "PatientWeight", "DS", weight),
                    TagEntry("00081140", "ReferencedImageSequence", "SQ", "")}),)
        for name, date, text, weight, count in zip(names, dates, texts, weights, counts,
                                                   strict=True)
        for _ in range(count)
    ]


def _check_leaks_found(inst: Installation) -> None:
    project_id = _project_id(inst)
    _add_studies(inst, project_id, ["20200101", "20200601", "20201231", "20200301"])
    with inst.db.session() as session:
        add_to_inventory(session, project_id, _leaks_among_common_values())
    rows = {r.keyword_path: r for r in review_project(inst, "TESTPROJ", top=2)}
    assert rows["PatientName"].flags == ["person name"]
    assert rows["PatientName"].top_values == [("TP-0000", 5), ("TP-0001", 4)]
    assert rows["PatientName"].n_distinct == 5
    assert rows["AcquisitionDate"].flags == ["date outside the project's shifted study dates"]
    assert rows["ImageComments"].flags == ["free text with capitalised words (names?)"]
    assert rows["PatientWeight"].flags == [
        "not a valid DS value (text where a number, time or age belongs)"]
    assert rows["ReferencedImageSequence"].top_values == [("", 15)]


def test_leaks_are_found_beyond_the_values_read(installation, make_project, monkeypatch):
    """Past FLAG_SCAN_VALUES distinct values, names and dates are asked of the database."""
    monkeypatch.setattr(review_service, "FLAG_SCAN_VALUES", 2)
    make_project()
    _check_leaks_found(installation)


def test_review_on_postgresql(tmp_path: Path, postgres_url: str, monkeypatch):
    """The same on PostgreSQL: its NOT EXISTS, substr and LIKE with a backslash."""
    monkeypatch.setattr(review_service, "FLAG_SCAN_VALUES", 2)
    inst = Installation.open(Settings(home=tmp_path / "home", database_url=postgres_url))
    try:
        create_project(inst, ProjectSpec(**PROJECT))
        _check_leaks_found(inst)
    finally:
        inst.close()


def _fill_index(inst: Installation, project_id: int) -> None:
    """The inventory of 100,000 instances of 1,000 participants, written as bulk inserts."""
    days = [f"{2020 + n // 336}{n // 28 % 12 + 1:02d}{n % 28 + 1:02d}" for n in range(1000)]
    _add_studies(inst, project_id, days)
    per_instance = [("00080018", "SOPInstanceUID", "UI"), ("00200013", "InstanceNumber", "IS"),
                    ("00204000", "ImageComments", "LT")]
    per_participant = [("00100010", "PatientName", "PN"), ("00100020", "PatientID", "LO"),
                       ("00080022", "AcquisitionDate", "DA")]
    shared = [(f"0018{i:04X}", f"Tag{i}", "DS") for i in range(150)] + [
        ("00080090", "ReferringPhysicianName", "PN")]
    with inst.db.session() as session:
        session.execute(insert(TagInventory), [
            {"project_id": project_id, "tag_path": p, "keyword_path": k, "vr": vr,
             "n_instances": INSTANCES, "n_distinct": 0}
            for p, k, vr in per_instance + per_participant + shared
        ])
        for path, _k, vr in per_instance:
            text = {"UI": "2.25.{}", "IS": "{}", "LT": "slice {} of the series"}[vr]
            session.execute(insert(TagValue), [
                {"project_id": project_id, "tag_path": path, "value": text.format(n),
                 "n_instances": 1} for n in range(INSTANCES)])
        for path, _k, vr in per_participant:
            values = [f"TP-{n:04d}" for n in range(1000)] if vr != "DA" else days
            leak = {"PN": "Nordmann^Ola", "LO": "12057812345", "DA": "19780512"}[vr]
            session.execute(insert(TagValue), [
                {"project_id": project_id, "tag_path": path, "value": value,
                 "n_instances": 99 if n == 0 else 100} for n, value in enumerate(values)
            ] + [{"project_id": project_id, "tag_path": path, "value": leak, "n_instances": 1}])
        for path, _k, vr in shared:
            values = (("baseline", INSTANCES),) if vr == "PN" else (
                ("1.5", 60_000), ("2.5", 30_000), ("3.5", 10_000))
            session.execute(insert(TagValue), [
                {"project_id": project_id, "tag_path": path, "value": v, "n_instances": n}
                for v, n in values])
        distinct = select(func.count()).where(
            TagValue.project_id == TagInventory.project_id,
            TagValue.tag_path == TagInventory.tag_path).scalar_subquery()
        session.execute(update(TagInventory).values(n_distinct=distinct))


def test_review_of_100000_instances_reads_only_the_index(installation, make_project):
    make_project()
    project_id = _project_id(installation)
    _fill_index(installation, project_id)
    start = time.perf_counter()
    reviews = review_project(installation, "TESTPROJ")
    elapsed = time.perf_counter() - start
    print(f"\nreview of {INSTANCES} instances, {len(reviews)} tag paths: {elapsed:.3f} s")
    rows = {r.keyword_path: r for r in reviews}
    assert len(reviews) == 157
    assert rows["Tag0"].top_values == [("1.5", 60_000), ("2.5", 30_000), ("3.5", 10_000)]
    assert rows["SOPInstanceUID"].n_distinct == INSTANCES
    assert rows["PatientName"].n_distinct == 1001
    assert len(rows["SOPInstanceUID"].top_values) == 5
    assert rows["PatientName"].flags == ["person name"]
    assert rows["PatientID"].flags == ["PatientID is not a participant ID of the project"]
    assert rows["AcquisitionDate"].flags == ["date outside the project's shifted study dates"]
    assert all(n == 100 for _v, n in rows["PatientName"].top_values)
    # Ties across the cut are broken by value, whatever order the rows were written in.
    with installation.db.session() as session:
        for keyword in ("SOPInstanceUID", "PatientName"):
            path = rows[keyword].tag_path
            count = rows[keyword].top_values[-1][1]
            smallest = session.scalars(
                select(TagValue.value).where(TagValue.tag_path == path,
                                             TagValue.n_instances == count)
                .order_by(TagValue.value).limit(5)).all()
            assert [v for v, _ in rows[keyword].top_values] == smallest, keyword
    flagged = sorted(r.keyword_path for r in reviews if r.flags)
    assert flagged == ["AcquisitionDate", "PatientID", "PatientName"]


def test_sequences_of_sequences_nest_their_paths():
    inner = Dataset()
    inner.CodeValue = "113100"
    outer = Dataset()
    outer.PurposeOfReferenceCodeSequence = Sequence([inner])
    ds = Dataset()
    ds.SourceImageSequence = Sequence([outer])
    assert tag_entries(ds) == {
        TagEntry("00082112", "SourceImageSequence", "SQ", ""),
        TagEntry("00082112/0040A170", "SourceImageSequence>PurposeOfReferenceCodeSequence",
                 "SQ", ""),
        TagEntry("00082112/0040A170/00080100",
                 "SourceImageSequence>PurposeOfReferenceCodeSequence>CodeValue", "SH", "113100"),
    }


def test_counting_by_group_is_counting_each_instance_entry_by_entry():
    """Each tag path and (path, value) counts once per instance, whether its entries come
    in groups of one or many, shared by instances (the same object or an equal one) or
    their own, and a path met twice in a group (items of a sequence) counts once."""
    from collections import Counter

    from rpacs.review.inventory import _counts

    modality = frozenset({TagEntry("00080060", "Modality", "CS", "MR")})
    references = frozenset({
        TagEntry("00081140", "ReferencedImageSequence", "SQ", ""),
        TagEntry("00081140/00081155", "ReferencedImageSequence>ReferencedSOPInstanceUID",
                 "UI", "1.2.3"),
        TagEntry("00081140/00081155", "ReferencedImageSequence>ReferencedSOPInstanceUID",
                 "UI", "1.2.4")})
    instances = [(modality, references,
                  frozenset({TagEntry("00080018", "SOPInstanceUID", "UI", f"2.25.{i}")}),
                  frozenset({TagEntry("00200013", "InstanceNumber", "IS", str(i % 2))}))
                 for i in range(5)]
    instances.append((frozenset({TagEntry("00080060", "Modality", "CS", "MR")}),))
    paths, values, meta = _counts(instances)
    want_paths: Counter[str] = Counter()
    want_values: Counter[tuple[str, str]] = Counter()
    for instance in instances:
        entries = [entry for group in instance for entry in group]
        want_paths.update({entry.tag_path for entry in entries})
        want_values.update({(entry.tag_path, entry.value) for entry in entries})
    assert paths == want_paths and values == want_values
    assert values["00080060", "MR"] == 6 and values["00200013", "1"] == 2
    assert meta["00080060"] == ("Modality", "CS")
    assert meta["00081140/00081155"] == (
        "ReferencedImageSequence>ReferencedSOPInstanceUID", "UI")


LONG_COMMENT = ("the examination was performed without complications and the images are of "
                "good diagnostic quality, no motion artefacts were seen in any series; "
                "contact nurse via Gunnhild Hansen ext 4455667")


def test_a_long_value_keeps_the_stretch_that_is_flagged():
    assert len(LONG_COMMENT) > VALUE_LENGTH
    kept = kept_text(LONG_COMMENT, "ImageComments", "LT")
    assert kept.startswith(EXCERPT_MARK) and len(kept) <= VALUE_LENGTH
    assert "Gunnhild Hansen ext 4455667" in kept
    assert set(value_flags("ImageComments", "LT", kept, CONTEXT)) == set(
        value_flags("ImageComments", "LT", LONG_COMMENT, CONTEXT))
    # A head that shows more of the flags than any later stretch stays.
    rich = ("mail kari@example.no from Kari Nordmann ref 12345678 " + "x " * 200
            + " bor i Storgata 12")
    assert kept_text(rich, "ImageComments", "LT") == rich[:VALUE_LENGTH]
    # A value of a megabyte: its end is searched too.
    huge = "x " * 500_000 + " call Gunnhild Hansen ext 4455667"
    assert kept_text(huge, "ImageComments", "LT").endswith("Gunnhild Hansen ext 4455667")
    plain = "x" * 300  # nothing to flag: the head, as before
    assert kept_text(plain, "ImageComments", "LT") == plain[:VALUE_LENGTH]
    assert kept_text(LONG_COMMENT, "PixelData", "OW") == LONG_COMMENT[:VALUE_LENGTH]


def test_review_flags_a_name_at_the_end_of_a_long_comment(installation, make_project,
                                                          tmp_path):
    from rpacs.ingest import import_paths

    make_project()
    ds = f.mr_dataset()
    ds.ImageComments = LONG_COMMENT
    f.write(ds, tmp_path / "in" / "1.dcm")
    assert import_paths(installation, "TESTPROJ", "TP-0001", "baseline",
                        [tmp_path / "in"], workers=1).ok
    rows = {r.keyword_path: r for r in review_project(installation, "TESTPROJ")}
    comment = rows["ImageComments"]
    assert "long run of digits (an ID or phone number?)" in comment.flags
    assert comment.top_values[0][0].startswith(EXCERPT_MARK)


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"],
                         ids=["big-endian", "deflated"])
def test_the_inventory_has_the_stored_files_group_length(installation, make_project,
                                                          tmp_path, syntax):
    """Files the byte path declines (big-endian, deflated) are indexed from the data set,
    whose file meta still has the original file's group length."""
    from rpacs.ingest import import_paths

    make_project()
    ds = f.mr_dataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.ImplementationVersionName = "X" * 16  # another length than rpacs writes
    f.write(ds, tmp_path / "in" / "1.dcm")
    assert import_paths(installation, "TESTPROJ", "TP-0001", "baseline",
                        [tmp_path / "in"], workers=1).ok
    stored = next(installation.settings.store_dir.rglob("*.dcm"))
    written = dcmread(stored, stop_before_pixels=True).file_meta.FileMetaInformationGroupLength
    rows = {r.keyword_path: r for r in review_project(installation, "TESTPROJ")}
    assert rows["FileMetaInformationGroupLength"].top_values == [(str(written), 1)]
