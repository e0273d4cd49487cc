"""A killed export leaves no package, and rerunning it resumes where it stopped."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rpacs.errors import ConflictError
from rpacs.export import ExportSpec, Finding, ManifestRow, run_export
from rpacs.export.content import SeriesResult

SPEC = """\
name: resumable
identity: {participant: random, pattern: "R{n:04d}"}
dates: shift
formats: [dicom, nifti]
package: zip
"""


def _files(folder: Path) -> dict[Path, bytes]:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_killed_export_resumes_and_gives_the_same_package(archive, tmp_path):
    spec_file = tmp_path / "resumable.yaml"
    spec_file.write_text(SPEC)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPACS_")}
    env["RPACS_HOME"] = str(archive.home)
    rpacs = Path(sys.executable).with_name("rpacs")
    process = subprocess.Popen(
        [str(rpacs), "export", archive.acronym, "--spec", str(spec_file), "--out", str(out),
         "--workers", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    done = out / ".resumable.export-work" / "done"
    # Kill it once two series are done: what a power cut or an impatient user does.
    while process.poll() is None and len(list(done.glob("*.json"))) < 2:
        time.sleep(0.005)
    assert process.poll() is None, "the export finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert sorted(p.name for p in out.iterdir()) == [".resumable.export-work"]
    finished = len(list(done.glob("*.json")))

    spec = ExportSpec.from_yaml(SPEC)
    result = run_export(archive.inst, archive.acronym, spec, out, workers=2)
    assert result.resumed >= finished >= 2
    assert sorted(p.name for p in out.iterdir()) == [
        "resumable.coupling-list.csv", "resumable.risk-report.json", "resumable.zip"]

    # The same as an export that was never interrupted.
    fresh = run_export(archive.inst, archive.acronym, spec, tmp_path / "fresh", workers=2)
    assert fresh.resumed == 0
    assert _files(out) == _files(tmp_path / "fresh")


def test_a_kill_just_after_the_package_appears_leaves_its_record_and_no_key(
        archive, tmp_path, monkeypatch):
    """Killed as the work folder goes: the package has its audit record (written with it,
    not after), and the next run of the spec removes the folder, whose key would link the
    new IDs back to research IDs though no coupling list was to be kept."""
    from sqlalchemy import select

    import rpacs.export.service as service
    from rpacs.db import AuditEvent

    anonymous = SPEC.replace("pattern: \"R{n:04d}\"", "coupling_list: false").replace(
        "[dicom, nifti]", "[dicom]")
    spec = ExportSpec.from_yaml(anonymous)
    out = tmp_path / "out"
    real_rmtree = service.shutil.rmtree

    def killed(path, *args, **kwargs):
        if Path(path).name == ".resumable.export-work":
            raise KeyboardInterrupt  # the kill
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(service.shutil, "rmtree", killed)
    with pytest.raises(KeyboardInterrupt):
        run_export(archive.inst, archive.acronym, spec, out)
    monkeypatch.setattr(service.shutil, "rmtree", real_rmtree)
    work = out / ".resumable.export-work"
    assert (out / "resumable.zip").is_file() and work.is_dir()
    assert json.loads((work / "state.json").read_text())["run_key"]
    with archive.inst.db.session() as session:
        actions = list(session.scalars(select(AuditEvent.action)))
    assert "export" in actions
    with pytest.raises(ConflictError, match="already exists"):
        run_export(archive.inst, archive.acronym, spec, out)
    assert not work.exists()


def test_a_commit_that_fails_takes_the_package_back(archive, tmp_path, monkeypatch):
    """The package and its records go together: if the commit fails after the rename (a
    locked database, a dropped connection), the package is not left without them."""
    import rpacs.export.service as service

    spec = ExportSpec.from_yaml(SPEC.replace("[dicom, nifti]", "[dicom]"))
    out = tmp_path / "out"
    real = service._audit

    def audit_then_fail(session, *args, **kwargs):
        real(session, *args, **kwargs)
        session.info["fail"] = True

    def fail_on_commit(session):
        if session.info.pop("fail", False):
            raise RuntimeError("the database went away")

    from sqlalchemy import event
    from sqlalchemy.orm import Session

    monkeypatch.setattr(service, "_audit", audit_then_fail)
    event.listen(Session, "before_commit", fail_on_commit)
    try:
        with pytest.raises(RuntimeError, match="went away"):
            run_export(archive.inst, archive.acronym, spec, out)
    finally:
        event.remove(Session, "before_commit", fail_on_commit)
    monkeypatch.setattr(service, "_audit", real)
    assert not (out / "resumable.zip").exists()
    result = run_export(archive.inst, archive.acronym, spec, out)  # resumes, and is recorded
    assert Path(result.package).is_file() and result.resumed > 0


def test_a_package_placed_but_not_recorded_is_named_so(archive, tmp_path):
    """Killed between the rename and the commit: the next run says the package has no
    record, rather than only that it exists."""
    spec = ExportSpec.from_yaml(SPEC.replace("[dicom, nifti]", "[dicom]"))
    out = tmp_path / "out"
    (out / ".resumable.export-work").mkdir(parents=True)
    (out / "resumable.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    with pytest.raises(ConflictError, match="has no export record"):
        run_export(archive.inst, archive.acronym, spec, out)
    assert not (out / ".resumable.export-work").exists()


def test_a_changed_spec_starts_over(archive, tmp_path):
    out = tmp_path / "out"
    work = out / ".resumable.export-work"
    work.mkdir(parents=True)
    (work / "state.json").write_text('{"spec_sha256": "another spec", "plan": "x"}')
    (work / "done").mkdir()
    (work / "done" / "stale.json").write_text("{}")
    result = run_export(archive.inst, archive.acronym, ExportSpec.from_yaml(SPEC), out)
    assert result.resumed == 0 and not work.exists()


def test_a_series_record_reads_back_as_it_was_written():
    result = SeriesResult(
        "s1.1", rows=[ManifestRow("A/1.dcm", "A", "baseline", "MR", "1 t1", "ab" * 32, "A.zip"),
                      ManifestRow("A/2.dcm", "A", "baseline", "MR", "1 t1", "cd" * 32, "A.zip")],
        findings=[Finding("A/2.dcm", "StudyDate", "archive date", "2***")],
        traits={"sex": "F", "age": "040Y"}, nifti_error="no slices",
        spans={"A/1.dcm": ("s1.1.bin", 0, 10, 7), "A/2.dcm": ("s1.1.bin", 10, 12, 9)})
    assert result.as_dict() == dataclasses.asdict(result)
    assert SeriesResult.from_dict(json.loads(json.dumps(result.as_dict()))) == result
