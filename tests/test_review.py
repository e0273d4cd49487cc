"""Review reads only the index: correct counts and flags, fast at 100,000 instances."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import insert, select

from rpacs.db import Project, TagInventory, TagValue
from rpacs.installation import Installation
from rpacs.projects import ProjectSpec, create_project
from rpacs.review import (
    ReviewContext,
    add_to_inventory,
    review_project,
    tag_entries,
    value_flags,
)
from rpacs.settings import Settings

from . import dicom_factory as f

INSTANCES = 100_000


def _project(tmp_path: Path) -> tuple[Installation, int]:
    inst = Installation.open(Settings(home=tmp_path / "home"))
    create_project(inst, ProjectSpec(
        acronym="REVIEWBIG", rek="1", pi_name="PI", pi_email="pi@example.org",
        start_date="2024-01-01", end_date="2030-01-01", participant_pattern=r"R-\d{4}",
        events=["baseline"]))
    with inst.db.session() as session:
        project_id = session.scalar(select(Project.id).where(Project.acronym == "REVIEWBIG"))
    return inst, project_id


def test_inventory_counts_once_per_instance_and_nested_paths(tmp_path):
    inst, project_id = _project(tmp_path)
    ds = f.mr_dataset()
    entries = tag_entries(ds)
    paths = {e.tag_path for e in entries}
    assert "00081140/00081155" in paths  # nested: ReferencedImageSequence > ReferencedSOP...
    assert "00291010@SIEMENS CSA HEADER" in paths
    assert ("7FE00010", "OW") in {(e.tag_path, e.vr) for e in entries}
    with inst.db.session() as session:
        add_to_inventory(session, project_id, [entries, entries])
    rows = {r.keyword_path: r for r in review_project(inst, "REVIEWBIG")}
    assert rows["PatientName"].n_instances == 2
    assert rows["PatientName"].top_values == [(f.PATIENT_NAME, 2)]
    assert "person name" in rows["PatientName"].flags  # not a participant ID of the project
    assert rows["PixelData"].top_values == [("", 2)]
    inst.close()


def test_flags():
    context = ReviewContext(frozenset({"R-0001", "baseline"}), "20200101", "20201231")
    assert value_flags("PatientName", "PN", "R-0001", context) == []
    assert value_flags("OperatorsName", "PN", "Hansen^Kari", context) == ["person name"]
    assert value_flags("StudyDate", "DA", "20200615", context) == []
    assert value_flags("AcquisitionDate", "DA", "20230517", context)
    assert value_flags("ImageComments", "LT", "call 55 97 50 00 12", context)
    assert value_flags("ImageComments", "LT", "mail ola@example.org", context)
    assert value_flags("ImageComments", "LT", "Patient Testesen scanned today", context)
    assert value_flags("ImageComments", "LT", "Patient *** *** scanned", context) == []
    assert value_flags("SeriesDescription", "LO", "t1 mprage sag Ola", context) == []
    assert value_flags("StudyComments", "LT", "Bor i Storgata 12", context)


def test_review_of_100000_instances_reads_only_the_index(tmp_path):
    inst, project_id = _project(tmp_path)
    per_instance = [("00080018", "SOPInstanceUID", "UI"), ("00020003",
                    "MediaStorageSOPInstanceUID", "UI"), ("00200013", "InstanceNumber", "IS")]
    shared = [(f"0018{i:04X}", f"Tag{i}", "DS") for i in range(150)]
    with inst.db.session() as session:
        session.execute(insert(TagInventory), [
            {"project_id": project_id, "tag_path": p, "keyword_path": k, "vr": vr,
             "n_instances": INSTANCES, "n_distinct": INSTANCES if vr == "UI" else 3}
            for p, k, vr in per_instance + shared
        ])
        for path, _k, vr in per_instance:
            session.execute(insert(TagValue), [
                {"project_id": project_id, "tag_path": path, "value": f"2.25.{n}",
                 "n_instances": 1}
                for n in range(INSTANCES)
            ] if vr == "UI" else [
                {"project_id": project_id, "tag_path": path, "value": str(n), "n_instances": 1}
                for n in range(INSTANCES)
            ])
        for path, _k, _vr in shared:
            session.execute(insert(TagValue), [
                {"project_id": project_id, "tag_path": path, "value": v, "n_instances": n}
                for v, n in (("1.5", 60_000), ("2.5", 30_000), ("3.5", 10_000))
            ])
    start = time.perf_counter()
    reviews = review_project(inst, "REVIEWBIG")
    elapsed = time.perf_counter() - start
    print(f"review of {INSTANCES} instances, {len(reviews)} tag paths: {elapsed:.3f} s")
    by_keyword = {r.keyword_path: r for r in reviews}
    assert len(reviews) == 153
    assert by_keyword["SOPInstanceUID"].n_distinct == INSTANCES
    assert by_keyword["Tag0"].top_values == [("1.5", 60_000), ("2.5", 30_000), ("3.5", 10_000)]
    inst.close()
