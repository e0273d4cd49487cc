"""The issue's export on PostgreSQL: stored IDs, export records, audit (``make test``)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from rpacs.db import AuditEvent, ExportId, ExportRun
from rpacs.export import ExportSpec, run_export

from .conftest import ISSUE_SPEC, build_archive


def test_issue_export_on_postgresql(tmp_path: Path, postgres_url: str, sidecar: Path):
    archive = build_archive(tmp_path / "home", tmp_path, participants=3, events=("baseline",),
                            database_url=postgres_url)
    try:
        spec = ExportSpec.from_yaml(ISSUE_SPEC)
        first = run_export(archive.inst, archive.acronym, spec, tmp_path / "a", sidecar=sidecar)
        second = run_export(archive.inst, archive.acronym, spec, tmp_path / "b",
                            sidecar=sidecar)
        assert Path(first.coupling_list).read_bytes() == Path(second.coupling_list).read_bytes()
        assert (tmp_path / "a/oslo-collab/README.txt").read_bytes() == \
            (tmp_path / "b/oslo-collab/README.txt").read_bytes()
        with archive.inst.db.session() as session:
            assert session.scalar(select(func.count()).select_from(ExportId)) == 3
            assert session.scalar(select(func.count()).select_from(ExportRun)) == 2
            assert session.scalar(select(func.count()).select_from(AuditEvent).where(
                AuditEvent.action == "export")) == 2
        assert not (tmp_path / "home" / "rpacs.sqlite3").exists()
    finally:
        archive.inst.close()
