"""No original value in what rpacs prints or logs, pydicom's own warnings included.

pydicom warns of a value that does not fit its VR with the value in the message: a name
typed into an IS went to stderr and pydicom's logger (the DICOM service's log) wherever rpacs
read it, until :mod:`rpacs.deid.quiet` turned those checks off.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.dataelem import RawDataElement
from pydicom.tag import BaseTag

from . import dicom_factory as f

SRC = Path(__file__).resolve().parent.parent / "src" / "rpacs"
#: Text a malformed source file holds where numbers belong: kept in the archive (the
#: profile keeps these attributes), so shown by the review, whose job that is, and by
#: nothing else.
MALFORMED = ("Zebulonsen", "Quintilia", "Ottarsen")
#: The patient's name: removed on import, so shown by nothing.
NAME = ("Brattvollen", "Hildegunn")


def _imports(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""] + [f"{node.module}.{a.name}" if node.module else a.name
                                      for a in node.names]
    return []


def test_every_module_that_imports_pydicom_turns_its_value_warnings_off():
    """The rule that keeps the checks off in any process, whichever module comes first."""
    missing = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "quiet.py":
            continue
        names = [n for node in ast.parse(path.read_text()).body for n in _imports(node)]
        third_party = any(n.split(".")[0] in ("pydicom", "pynetdicom") for n in names)
        if third_party and not any(n in ("quiet", "deid.quiet") or n.endswith(".quiet")
                                   for n in names):
            missing.append(str(path.relative_to(SRC)))
    assert missing == [], f"import rpacs.deid.quiet in {missing}"


def test_a_malformed_value_is_never_printed_by_the_commands(tmp_path, subprocess_env):
    source = tmp_path / "in"
    source.mkdir()
    ds = f.mr_dataset()
    ds.PatientName = "Brattvollen^Hildegunn"
    for tag, vr, value in ((0x00101030, "DS", b"Zebulonsen"),  # PatientWeight
                           (0x00200012, "IS", b"Quintilia "),  # AcquisitionNumber
                           (0x00180050, "DS", b"Ottarsen")):  # SliceThickness
        ds._dict[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr, len(value), value, 0,
                                                False, True)
    ds.save_as(source / "a.dcm", enforce_file_format=True)
    script = shutil.which("rpacs", path=str(Path(sys.executable).parent))
    assert script

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([script, *args], capture_output=True, text=True,
                              env=subprocess_env, timeout=120, cwd=tmp_path)
        shown = NAME if args[0] == "review" else NAME + MALFORMED
        for planted in shown:
            assert planted not in done.stdout + done.stderr, (args, done.stderr)
        return done

    assert run("project", "create", "QUIET", "--rek", "1", "--pi-name", "P", "--pi-email",
               "p@example.org", "--start", "2024-01-01", "--end", "2030-01-01",
               "--participant-pattern", r"Q-\d", "--events", "base").returncode == 0
    assert run("import", str(source), "--project", "QUIET", "--participant", "Q-1",
               "--event", "base", "--workers", "1").returncode == 0
    review = run("review", "QUIET")
    assert "not a valid DS value" in review.stdout  # flagged, masked by the terminal table
    assert run("deid", str(source), str(tmp_path / "out"), "--project", "QUIET",
               "--participant", "Q-1", "--workers", "1").returncode == 0
    spec = tmp_path / "spec.yaml"
    spec.write_text('name: quiet\nidentity: {participant: random, pattern: "X{n:03d}"}\n'
                    'dates: shift\n'
                    # Not ASCII: the byte path declines, and pydicom reads every value.
                    'tags: [{tag: StudyDescription, set: "Ærø studie"}]\n'
                    'layout: "{participant}/{instance_number}.dcm"\nformats: [dicom]\n')
    refused = run("export", "QUIET", "--spec", str(spec), "--out", str(tmp_path / "pkg"))
    # The scan reads numbers too: text where one belongs stops the export.
    assert refused.returncode != 0 and "not a valid IS value" in refused.stderr


@pytest.mark.parametrize("module", ["rpacs.preview.render", "rpacs.quarantine.service",
                                    "rpacs.net.receiver", "rpacs.ingest.worker"])
def test_pydicom_reads_a_malformed_value_silently_once_rpacs_is_imported(tmp_path, module):
    """What the web app's preview, the DICOM service (whose log is a file) and the
    import's workers read with pydicom: an IS holding a name used to be printed, with the
    name, to stderr and pydicom's logger. In a fresh interpreter, as those processes are."""
    ds = f.mr_dataset()
    ds.PatientName = "Brattvollen^Hildegunn"
    for tag, vr, value in ((0x00200012, "IS", b"Zebulonsen"),
                           (0x00080005, "CS", b"ISO_IR 999 Quintilia")):  # a charset unknown
        ds._dict[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr, len(value), value, 0,
                                                False, True)
    path = tmp_path / "a.dcm"
    ds.save_as(path, enforce_file_format=True)
    code = (f"import logging, sys; logging.basicConfig(level=logging.DEBUG); import {module}; "
            "from pydicom import dcmread; ds = dcmread(sys.argv[1]); "
            "print(ds.AcquisitionNumber, ds.PatientName)")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Zebulonsen Brattvollen^Hildegunn\n", done.stderr
    for value in ("Zebulonsen", "Quintilia", "Brattvollen"):
        assert value not in done.stderr
