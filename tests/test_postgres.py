"""The same project → import → review flow on PostgreSQL (``make test`` starts a cluster)."""

from __future__ import annotations

from pathlib import Path

from rpacs.ingest import import_paths
from rpacs.installation import Installation
from rpacs.projects import ProjectSpec, create_project
from rpacs.review import review_project
from rpacs.settings import Settings

from . import dicom_factory as f


def test_import_and_review_on_postgresql(tmp_path: Path, postgres_url: str):
    inst = Installation.open(Settings(home=tmp_path / "home", database_url=postgres_url))
    try:
        create_project(
            inst,
            ProjectSpec(
                acronym="PGTEST",
                rek="2024/1",
                pi_name="PI",
                pi_email="pi@example.org",
                start_date="2024-01-01",
                end_date="2026-01-01",
                participant_pattern=r"^PG-\d{3}$",
                events=["baseline"],
            ),
        )
        f.write_study(tmp_path / "in", series=2, per_series=3)
        first = import_paths(inst, "PGTEST", "PG-001", "baseline", [tmp_path / "in"], workers=2)
        again = import_paths(inst, "PGTEST", "PG-001", "baseline", [tmp_path / "in"], workers=1)
        assert (first.stored, first.rejected) == (6, [])
        assert (again.stored, again.present) == (0, 6)
        rows = {row.keyword_path: row for row in review_project(inst, "PGTEST")}
        assert rows["PatientID"].n_instances == 6
        assert rows["PatientID"].top_values == [("PG-001", 6)]
        assert rows["SOPInstanceUID"].n_distinct == 6
        assert not (tmp_path / "home" / "rpacs.sqlite3").exists()
    finally:
        inst.close()
