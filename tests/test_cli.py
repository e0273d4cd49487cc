"""The command line, through click's runner and through the installed ``rpacs`` script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rpacs.cli import cli

from . import dicom_factory as f

CREATE = ["project", "create", "CLITEST", "--rek", "2024/77", "--pi-name", "Kari PI",
          "--pi-email", "pi@example.org", "--start", "2024-01-01", "--end", "2028-12-31",
          "--participant-pattern", r"^CLI-\d{3}$", "--events", "baseline,followup"]


@pytest.fixture
def run(tmp_path: Path):
    runner = CliRunner()
    env = {"RPACS_HOME": str(tmp_path / "home")}

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(cli, list(args), env=env, input=input, catch_exceptions=False)

    return invoke


def test_create_reports_every_problem_and_exits_2(run):
    result = run("project", "create", "X!", "--rek", " ", "--pi-name", "PI", "--pi-email",
                 "not-an-email", "--start", "2024-05-01", "--end", "2024-01-01",
                 "--participant-pattern", "([", "--events", "base line,base line")
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    for option in ("--acronym", "--rek", "--pi-email", "--end", "--participant-pattern",
                   "--events"):
        assert any(option in line for line in lines), option
    assert "Traceback" not in result.output


def test_create_list_show_and_duplicate(run):
    assert run(*CREATE).exit_code == 0
    again = run(*CREATE[:2], "clitest", *CREATE[3:])
    assert again.exit_code == 2 and "already exists" in again.stderr
    listed = json.loads(run("project", "list", "--json").stdout)
    assert [p["acronym"] for p in listed] == ["CLITEST"]
    shown = json.loads(run("project", "show", "CLITEST", "--json").stdout)
    assert shown["events"] == ["baseline", "followup"] and shown["instances"] == 0
    assert "secret" not in json.dumps(shown)
    missing = run("project", "show", "NOPE1")
    assert missing.exit_code == 2 and "no project 'NOPE1'" in missing.stderr


def test_import_review_and_patient_locate(run, tmp_path):
    run(*CREATE)
    f.write_study(tmp_path / "in", series=1, per_series=3)
    (tmp_path / "in" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    result = run("import", str(tmp_path / "in"), "--project", "CLITEST", "--participant",
                 "CLI-001", "--event", "baseline", "--workers", "1")
    assert result.exit_code == 1
    assert "stored: 3" in result.stdout and "rejected: 1" in result.stdout
    assert "broken.dcm" in result.stderr
    rows = json.loads(run("review", "CLITEST", "--json").stdout)
    by_keyword = {r["keyword_path"]: r for r in rows}
    assert by_keyword["PatientID"]["top_values"] == [{"value": "CLI-001", "count": 3}]
    nested = by_keyword["ReferencedImageSequence>ReferencedSOPInstanceUID"]
    assert nested["tag"] == "(0008,1140)>(0008,1155)" and nested["n_distinct"] == 3
    flagged = run("review", "CLITEST", "--flagged")
    assert flagged.exit_code == 0 and "flagged" in flagged.stdout
    located = json.loads(run("patient", "locate", "--json", input=f.PATIENT_ID + "\n").stdout)
    assert located == [{"project": "CLITEST", "studies": 1}]
    unknown = run("patient", "locate", input="00000000000\n")
    assert "no project holds data" in unknown.stdout
    bad = run("import", str(tmp_path / "in"), "--project", "CLITEST", "--participant",
              "Nordmann", "--event", "week9")
    assert bad.exit_code == 2
    assert "--participant" in bad.stderr and "--event" in bad.stderr


def test_deid_folder_to_folder_keeps_no_file_names(run, tmp_path):
    run(*CREATE)
    f.write_study(tmp_path / "in", series=2, per_series=2)
    out = tmp_path / "out"
    result = run("deid", str(tmp_path / "in"), str(out), "--project", "CLITEST",
                 "--participant", "CLI-002", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["stored"] == 4
    written = sorted(out.rglob("*"))
    assert all("Testesen" not in str(p) for p in written)
    assert len([p for p in written if p.suffix == ".dcm"]) == 4
    listed = json.loads(run("project", "show", "CLITEST", "--json").stdout)
    assert listed["instances"] == 0, "deid must not touch the archive"


def test_installed_script(tmp_path):
    script = shutil.which("rpacs", path=str(Path(sys.executable).parent))
    assert script, "the rpacs console script is installed with the package"
    env = {**os.environ, "RPACS_HOME": str(tmp_path / "home")}
    version = subprocess.run([script, "--version"], capture_output=True, text=True, env=env)
    assert version.returncode == 0 and "rpacs" in version.stdout
    created = subprocess.run([script, *CREATE], capture_output=True, text=True, env=env)
    assert created.returncode == 0, created.stderr
    bad = subprocess.run([script, "project", "show", "MISSING"], capture_output=True,
                         text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
