"""The command line, through click's runner and through the installed ``rpacs`` script."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rpacs import __version__
from rpacs.cli.context import progress_bar

from . import dicom_factory as f

CREATE = ["project", "create", "CLITEST", "--rek", "2024/77", "--pi-name", "Kari PI",
          "--pi-email", "pi@example.org", "--start", "2024-01-01", "--end", "2028-12-31",
          "--participant-pattern", r"CLI-\d{3}", "--events", "baseline,followup"]
IMPORT = ["--project", "CLITEST", "--participant", "CLI-001", "--event", "baseline",
          "--workers", "1"]


def _errors(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    assert all(line.startswith("error: ") for line in lines), stderr
    return [line.removeprefix("error: ") for line in lines]


def test_help_and_version(rpacs):
    assert rpacs("--version").stdout == f"rpacs, version {__version__}\n"
    usage = rpacs("--help").stdout
    for command in ("project", "import", "deid", "review", "demo", "patient"):
        assert f"\n  {command} " in usage, command
    assert "--participant-pattern" in rpacs("project", "create", "--help").stdout


def test_create_reports_every_problem_and_exits_2(rpacs, rpacs_home):
    result = rpacs("project", "create", "X!", "--rek", " ", "--pi-name", "PI", "--pi-email",
                   "not-an-email", "--start", "2024-05-01", "--end", "2024-01-01",
                   "--participant-pattern", "([", "--events", "base line,base line",
                   "--end-action", "archive", "--date-shift", "weekly")
    assert result.exit_code == 2 and result.stdout == ""
    options = [e.split(":")[0] for e in _errors(result.stderr)]
    assert options == ["--acronym", "--rek", "--pi-email", "--end", "--participant-pattern",
                       "--events", "--events", "--end-action", "--date-shift"]
    assert "--events: event names must be unique, whatever the letter case (base line)" \
        in result.stderr
    assert "Traceback" not in result.output
    assert json.loads(rpacs("project", "list", "--json").stdout) == []


def test_create_refuses_what_a_person_may_have_meant_otherwise(rpacs, rpacs_home):
    result = rpacs("project", "create", "LOOSE", "--rek", "1", "--pi-name", "PI",
                   "--pi-email", "pi@example.org", "--start", "2024-W01-1", "--end", "20250101",
                   "--participant-pattern", "   ", "--events", "Baseline,baseline")
    assert result.exit_code == 2
    assert _errors(result.stderr) == [
        "--start: '2024-W01-1' is not a date (YYYY-MM-DD)",
        "--end: '20250101' is not a date (YYYY-MM-DD)",
        "--participant-pattern: a regular expression is required",
        "--events: event names must be unique, whatever the letter case (Baseline, baseline)"]


def test_create_list_show_and_duplicate(rpacs):
    created = rpacs(*CREATE)
    assert created.exit_code == 0
    assert created.stdout == "created project CLITEST (events: baseline, followup)\n"
    again = rpacs(*CREATE[:2], "clitest", *CREATE[3:])
    assert again.exit_code == 2
    assert _errors(again.stderr) == ["a project with acronym 'CLITEST' already exists"]
    listed = json.loads(rpacs("project", "list", "--json").stdout)
    assert [p["acronym"] for p in listed] == ["CLITEST"]
    table = rpacs("project", "list").stdout.splitlines()
    assert table[0].split()[:3] == ["ACRONYM", "STATE", "END"]
    assert table[1].split() == ["CLITEST", "active", "2028-12-31", "0", "0", "0", "Kari", "PI"]
    shown = json.loads(rpacs("project", "show", "clitest", "--json").stdout)
    assert shown["events"] == ["baseline", "followup"] and shown["instances"] == 0
    assert shown["participant_pattern"] == r"CLI-\d{3}" and "secret" not in json.dumps(shown)
    text = rpacs("project", "show", "CLITEST").stdout
    assert "events                 baseline, followup\n" in text
    missing = rpacs("project", "show", "NOPE1")
    assert missing.exit_code == 2
    assert _errors(missing.stderr) == ["no project 'NOPE1' (see: rpacs project list)"]


def test_profiles_from_files(rpacs, tmp_path):
    profile = tmp_path / "profile.yaml"
    profile.write_text("tags:\n  - tag: StationName\n    action: keep\n", encoding="utf-8")
    assert rpacs(*CREATE, "--deid-profile", str(profile)).exit_code == 0
    assert "tag: (0008,1010)\n  action: keep" in rpacs("project", "profile", "CLITEST").stdout
    assert json.loads(rpacs("project", "show", "CLITEST", "--json").stdout)[
        "custom_deid_profile"] is True
    profile.write_text("options: [retain-uids]\n", encoding="utf-8")
    updated = rpacs("project", "set-profile", "CLITEST", str(profile))
    assert updated.exit_code == 0, updated.output
    assert rpacs("project", "profile", "CLITEST").stdout.startswith("options:\n- retain-uids\n")
    profile.write_text("options: [retain-nothing]\ntags: [{tag: Nope, action: keep}]\n",
                       encoding="utf-8")
    bad = rpacs("project", "set-profile", "CLITEST", str(profile))
    assert bad.exit_code == 2
    assert [e.split(":")[:2] for e in _errors(bad.stderr)] == [
        ["profile", " options[0]"], ["profile", " tags[0].tag"]]
    unreadable = rpacs("project", "set-profile", "CLITEST", str(tmp_path / "nope.yaml"))
    assert unreadable.exit_code == 2 and "PROFILE_FILE: cannot read" in unreadable.stderr
    assert "retain-uids" in rpacs("project", "profile", "CLITEST").stdout


def test_import_show_review_and_patient_locate(rpacs, tmp_path):
    rpacs(*CREATE)
    f.write_study(tmp_path / "in", series=1, per_series=3)
    (tmp_path / "in" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    (tmp_path / "in" / "notes.txt").write_text("not DICOM")
    result = rpacs("import", str(tmp_path / "in"), *IMPORT)
    assert result.exit_code == 1
    assert result.stdout == ("stored: 3, already present: 0, skipped (not DICOM): 1, "
                             "rejected: 1 (1 studies, 1 series)\n")
    assert result.stderr.startswith("rejected ") and "broken.dcm: " in result.stderr
    assert f"skipped {tmp_path / 'in' / 'notes.txt'}: not a DICOM file" in result.stderr
    again = rpacs("import", str(tmp_path / "in" / "Testesen_1_1_1.dcm"), *IMPORT, "--json")
    assert again.exit_code == 0
    assert json.loads(again.stdout) == {"stored": 0, "present": 1, "not_dicom": 0,
                                        "rejected": [], "skipped": [], "studies": 1,
                                        "series": 1, "ok": True}
    # A CD's viewer: each skipped file in --json, the first ten on the terminal.
    for n in range(12):
        (tmp_path / "cd" / f"viewer{n:02d}.html").parent.mkdir(exist_ok=True)
        (tmp_path / "cd" / f"viewer{n:02d}.html").write_text("<html></html>")
    cd = rpacs("import", str(tmp_path / "cd"), *IMPORT, "--json")
    assert [s["reason"] for s in json.loads(cd.stdout)["skipped"]] == ["not a DICOM file"] * 12
    told = rpacs("import", str(tmp_path / "cd"), *IMPORT).stderr.splitlines()
    assert len(told) == 11 and told[-1] == (
        "skipped 2 more file(s) that are not DICOM (--json lists them all)")
    shown = json.loads(rpacs("project", "show", "CLITEST", "--json").stdout)
    assert [shown[k] for k in ("participants", "studies", "series", "instances")] == [1, 1, 1, 3]

    rows = json.loads(rpacs("review", "CLITEST", "--json").stdout)
    by_keyword = {r["keyword_path"]: r for r in rows}
    assert by_keyword["PatientID"]["top_values"] == [{"value": "CLI-001", "count": 3}]
    nested = by_keyword["ReferencedImageSequence>ReferencedSOPInstanceUID"]
    assert nested["tag"] == "(0008,1140)>(0008,1155)" and nested["n_distinct"] == 3
    assert nested["vr"] == "UI" and nested["n_instances"] == 3 and nested["flags"] == []
    table = rpacs("review", "CLITEST").stdout.splitlines()
    assert table[0].split()[:5] == ["TAG", "KEYWORD", "VR", "INST", "DIST"]
    patient_id = next(line for line in table if " PatientID " in line)
    assert patient_id.split() == ["(0010,0020)", "PatientID", "LO", "3", "1", "'CLI-001'×3"]
    assert table[-1] == f"{len(rows)} tag paths, 0 flagged"
    flagged = rpacs("review", "CLITEST", "--flagged")
    assert flagged.stdout.splitlines()[1:] == [f"{len(rows)} tag paths, 0 flagged"]
    for value in f.PLANTED:
        assert value.decode() not in rpacs("review", "CLITEST", "--top", "1000").stdout

    located = json.loads(rpacs("patient", "locate", "--json", input=f.PATIENT_ID + "\n").stdout)
    assert located == [{"project": "CLITEST", "studies": 1}]
    assert rpacs("patient", "locate", input="00000000000\n").stdout == \
        "no project holds data of this patient\n"
    empty = rpacs("patient", "locate", input="\n")
    assert empty.exit_code == 2 and "no PatientID" in empty.stderr

    bad = rpacs("import", str(tmp_path / "in"), "--project", "CLITEST", "--participant",
                "Nordmann", "--event", "week9")
    assert bad.exit_code == 2
    assert [e.split(":")[0] for e in _errors(bad.stderr)] == ["--participant", "--event"]
    assert "Nordmann" not in bad.stderr


def test_review_flags_what_a_permissive_profile_kept(rpacs, tmp_path):
    profile = tmp_path / "profile.yaml"
    profile.write_text("tags:\n  - {tag: OperatorsName, action: keep}\n"
                       "  - {tag: InstitutionAddress, action: keep}\n", encoding="utf-8")
    rpacs(*CREATE, "--deid-profile", str(profile))
    f.write_study(tmp_path / "in", series=1, per_series=2)
    assert rpacs("import", str(tmp_path / "in"), *IMPORT).exit_code == 0
    flagged = rpacs("review", "CLITEST", "--flagged")
    lines = flagged.stdout.splitlines()[1:-1]
    assert [line.split()[1] for line in lines] == ["InstitutionAddress", "OperatorsName"]
    assert "!! looks like a street address" in lines[0] and "!! person name" in lines[1]
    assert flagged.stdout.splitlines()[-1].endswith(" tag paths, 2 flagged")
    as_json = json.loads(rpacs("review", "CLITEST", "--json", "--flagged").stdout)
    assert [r["flags"] for r in as_json] == [["looks like a street address"], ["person name"]]


def test_review_of_a_project_without_data(rpacs):
    rpacs(*CREATE)
    assert rpacs("review", "CLITEST").stdout.splitlines()[1:] == ["0 tag paths, 0 flagged"]
    assert rpacs("review", "NOPE1").exit_code == 2


def test_deid_folder_to_folder_keeps_no_file_names(rpacs, tmp_path):
    rpacs(*CREATE)
    f.write_study(tmp_path / "in", series=2, per_series=2)
    out = tmp_path / "out"
    result = rpacs("deid", str(tmp_path / "in"), str(out), "--project", "CLITEST",
                   "--participant", "CLI-002", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["stored"] == 4
    written = sorted(out.rglob("*"))
    assert all("Testesen" not in str(p) for p in written)
    assert len([p for p in written if p.suffix == ".dcm"]) == 4
    text = rpacs("deid", str(tmp_path / "in"), str(tmp_path / "out2"), "--project", "CLITEST",
                 "--participant", "CLI-002", "--event", "followup")
    assert text.stdout.startswith("written: 4, already present: 0")
    shown = json.loads(rpacs("project", "show", "CLITEST", "--json").stdout)
    assert shown["instances"] == 0, "deid must not touch the archive"
    # A file as the destination is one usage error, not a rejection per input file.
    into_file = rpacs("deid", str(tmp_path / "in"), str(written[-1]), "--project", "CLITEST",
                      "--participant", "CLI-002")
    assert into_file.exit_code == 2 and "is a file" in into_file.output
    # SRC and DST holding one another: the output would be read as input, or the
    # originals handed on among the de-identified files. Nothing is written.
    source = tmp_path / "in"
    for dst in (source, source / "out", tmp_path):
        before = sorted(tmp_path.rglob("*"))
        overlap = rpacs("deid", str(source), str(dst), "--project", "CLITEST",
                        "--participant", "CLI-002")
        assert overlap.exit_code == 2, overlap.output
        assert ("DST is inside SRC" if dst != tmp_path else "DST holds SRC") in overlap.output
        assert sorted(tmp_path.rglob("*")) == before


def test_a_file_as_rpacs_home_is_named(rpacs, cli_env, tmp_path):
    (tmp_path / "home-file").write_text("x")
    cli_env["RPACS_HOME"] = str(tmp_path / "home-file")
    result = rpacs("project", "list")
    assert result.exit_code == 2
    assert _errors(result.stderr) == [
        f"RPACS_HOME: {tmp_path / 'home-file'} cannot be the data folder: "
        f"{tmp_path / 'home-file'} is a file, not a folder"]
    cli_env["RPACS_HOME"] = str(tmp_path / "home-file" / "sub")  # below the file
    below = rpacs("project", "list")
    assert _errors(below.stderr) == [
        f"RPACS_HOME: {tmp_path / 'home-file' / 'sub'} cannot be the data folder: "
        f"{tmp_path / 'home-file'} is a file, not a folder"]


def test_bad_settings_are_reported_not_raised(rpacs, cli_env):
    cli_env["RPACS_WORKERS"] = "many"
    result = rpacs("project", "list")
    assert result.exit_code == 2
    assert _errors(result.stderr)[0].startswith("setting RPACS_WORKERS: ")


def test_demo_through_the_command_line(rpacs, rpacs_home):
    result = rpacs("demo", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["clean"] is True and report["home"] == str(rpacs_home)
    assert report["stored"] == report["files"] > 0


def test_demo_keeps_to_a_home_of_its_own(rpacs, cli_env, tmp_path, monkeypatch):
    # Without RPACS_HOME the demo does not touch the default home (~/.rpacs): a real
    # archive lives there. It makes ./demo-home, as make demo does.
    cli_env["RPACS_HOME"] = None
    cli_env["HOME"] = str(tmp_path / "user")
    monkeypatch.chdir(tmp_path)
    made = rpacs("demo", "--json")
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["home"] == str(tmp_path / "demo-home")
    assert not (tmp_path / "user" / ".rpacs").exists()
    # A home whose index holds a real project is refused before anything is made.
    cli_env["RPACS_HOME"] = str(tmp_path / "production")
    rpacs(*CREATE)
    refused = rpacs("demo")
    assert refused.exit_code == 2
    assert "the demo needs a home of its own" in refused.stderr and "CLITEST" in refused.stderr
    assert [p["acronym"] for p in json.loads(rpacs("project", "list", "--json").stdout)] \
        == ["CLITEST"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with progress_bar("import") as progress:
        assert progress is None
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress_bar("import") as progress:
        assert progress is not None
        progress(1, 4)
        progress(4, 4)
    assert "import" in terminal.getvalue() and "4/4" in terminal.getvalue()


def test_installed_script(subprocess_env):
    script = shutil.which("rpacs", path=str(Path(sys.executable).parent))
    assert script, "the rpacs console script is installed with the package"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([script, *args], capture_output=True, text=True,
                              env=subprocess_env, timeout=60)

    version = run("--version")
    assert version.returncode == 0 and version.stdout == f"rpacs, version {__version__}\n"
    created = run(*CREATE)
    assert created.returncode == 0, created.stderr
    assert (Path(subprocess_env["RPACS_HOME"]) / "rpacs.sqlite3").is_file()
    bad = run("project", "show", "MISSING")
    assert bad.returncode == 2 and bad.stderr == "error: no project 'MISSING' " \
        "(see: rpacs project list)\n"


@pytest.mark.parametrize("args", [["import", "x", "--project", "P"], ["review"]])
def test_usage_errors_exit_2(rpacs, args):
    assert rpacs(*args).exit_code == 2
