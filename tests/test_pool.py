"""The import's worker pool: started before the database, what each side imports, and how
it ends — on success, on a failing or dying worker, on an error in the parent."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydicom import dcmread

from rpacs.errors import InvalidInputError, WorkerError
from rpacs.ingest import deidentify_tree, import_paths
from rpacs.ingest import worker as worker_module
from rpacs.ingest.pool import WorkerPool
from rpacs.projects import set_deid_profile

from . import dicom_factory as f

#: More files than one chunk (service.CHUNK_SIZE), so that a run without a pool forks too.
FILES = 24


@contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """Fail the test instead of hanging it when the block takes longer than ``seconds``."""

    def expired(*_: object) -> None:
        raise AssertionError(f"no answer within {seconds} s: the run hangs")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (an ended one not yet reaped by its parent too)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def _end_soon(pids: list[int]) -> None:
    """Wait until the processes ``pids`` have ended: the workers a pool did not fork itself
    are signalled, not waited for, and may take a moment to finish exiting."""
    with _deadline(30):
        while not all(_gone(pid) for pid in pids):
            time.sleep(0.02)


def _fresh_python(code: str, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a new interpreter (nothing imported yet); its stdout."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def study(tmp_path: Path) -> Path:
    f.write_study(tmp_path / "in", series=2, per_series=FILES // 2)
    return tmp_path / "in"


# --- what each side imports ---------------------------------------------------------------


def test_worker_side_loads_no_sqlalchemy_and_the_pool_nothing_heavy():
    loaded = json.loads(_fresh_python(
        "import json, sys\n"
        "import rpacs.ingest.pool\n"
        "pool = sorted(m for m in ('pydicom', 'numpy', 'sqlalchemy', 'pydantic', 'yaml')"
        " if m in sys.modules)\n"
        "import rpacs.ingest.worker\n"
        "worker = sorted(m for m in ('pydicom', 'sqlalchemy') if m in sys.modules)\n"
        "print(json.dumps([pool, worker]))\n"))
    assert loaded == [[], ["pydicom"]]


#: Runs an ``rpacs`` command in this interpreter and prints which heavy modules the parent
#: had loaded when the pool started and at the end (``sys.argv[1:]`` are its arguments).
_PROBE = """
import json, sys
from rpacs.ingest import pool as pool_module

HEAVY = ("pydicom", "numpy", "sqlalchemy", "pydantic", "rpacs.ingest.worker")
seen = {}
start = pool_module.WorkerPool.start

def probed(self):
    seen["at_start"] = [m for m in HEAVY if m in sys.modules]
    started = start(self)
    seen["started"] = started.started
    return started

pool_module.WorkerPool.start = probed
from rpacs.cli.main import cli
try:
    cli(sys.argv[1:], standalone_mode=False)
finally:
    seen["at_end"] = [m for m in HEAVY if m in sys.modules]
    print(json.dumps(seen), file=sys.stderr)
"""


@pytest.mark.parametrize("command", ["deid", "import"])
def test_command_parent_starts_the_pool_first_and_never_loads_pydicom(
        command, rpacs, subprocess_env, tmp_path, study):
    assert rpacs("project", "create", "POOLS", "--rek", "2024/1", "--pi-name", "PI",
                 "--pi-email", "pi@example.org", "--start", "2024-01-01", "--end",
                 "2030-01-01", "--participant-pattern", r"P-\d{3}",
                 "--events", "baseline").exit_code == 0
    args = (["deid", str(study), str(tmp_path / "out")] if command == "deid"
            else ["import", str(study), "--event", "baseline"])
    args += ["--project", "POOLS", "--participant", "P-001", "--workers", "2", "--json"]
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True,
                          text=True, env=subprocess_env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stored"] == FILES
    seen = json.loads(done.stderr.splitlines()[-1])
    assert seen["started"] is True
    assert seen["at_start"] == [], "the pool starts before pydicom and the database"
    # The index (SQLAlchemy) is the parent's; reading DICOM (pydicom) is the workers' only,
    # and the settings need no pydantic (the web app's validation alone uses it).
    assert seen["at_end"] == ["sqlalchemy"]


#: Runs ``rpacs`` as its console script does (``main()``), recording in the file
#: ``sys.argv[1]`` whether each task found the garbage collector running in its worker,
#: and printing the parent's collector state at the end.
_GC_PROBE = """
import gc, json, os, sys
from rpacs.ingest import worker

plain = worker.process_task
record = sys.argv[1]

def probed(plan, sources):
    with open(record, "a") as out:
        out.write(json.dumps([os.getpid(), gc.isenabled()]) + "\\n")
    return plain(plan, sources)

worker.process_task = probed
from rpacs.cli import context

done = context.start_up_done
seen = {}

def probed_done():
    seen["during_start_up"] = gc.isenabled()
    done()
    seen["after_start_up"] = [gc.isenabled(), gc.get_freeze_count()]

context.start_up_done = probed_done
from rpacs.cli.main import main
sys.argv = ["rpacs", *sys.argv[2:]]
try:
    main()
finally:
    print(json.dumps(seen), file=sys.stderr)
"""


def test_collection_pauses_for_the_start_up_only(rpacs, subprocess_env, tmp_path, study):
    """main() pauses the garbage collector while the command loads its modules; the
    workers and the parent run with it again, the start-up's objects frozen."""
    assert rpacs("project", "create", "GCRUN", "--rek", "2024/1", "--pi-name", "PI",
                 "--pi-email", "pi@example.org", "--start", "2024-01-01", "--end",
                 "2030-01-01", "--participant-pattern", r"P-\d{3}",
                 "--events", "baseline").exit_code == 0
    tasks = tmp_path / "tasks.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", _GC_PROBE, str(tasks), "deid", str(study), str(tmp_path / "out"),
         "--project", "GCRUN", "--participant", "P-001", "--workers", "2", "--json"],
        capture_output=True, text=True, env=subprocess_env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stored"] == FILES
    seen = [json.loads(line) for line in tasks.read_text().splitlines()]
    assert len({pid for pid, _ in seen}) == 2 and all(enabled for _, enabled in seen)
    seen = json.loads(done.stderr.splitlines()[-1])
    assert seen["during_start_up"] is False, "collection is paused while the command starts"
    enabled, frozen = seen["after_start_up"]
    assert enabled and frozen > 10_000


def test_start_up_done_resumes_collection_once_and_only_in_a_process_of_its_own():
    from rpacs.cli import context

    assert gc.isenabled()
    before = gc.get_freeze_count()
    context.start_up_done()  # commands run inside this program (the tests): nothing
    assert gc.isenabled() and gc.get_freeze_count() == before
    try:
        context.own_process()
        assert not gc.isenabled()
        context.start_up_done()
        assert gc.isenabled()
        frozen = gc.get_freeze_count()
        assert frozen > before
        context.start_up_done()  # a second installation opened: no second freeze
        assert gc.get_freeze_count() == frozen
    finally:
        gc.enable()
        gc.unfreeze()
        context._STARTING = False


def test_lazy_packages_export_every_public_name():
    import importlib

    for name in ("rpacs.archive", "rpacs.deid", "rpacs.ingest", "rpacs.projects",
                 "rpacs.review"):
        package = importlib.import_module(name)
        for public in package.__all__:
            assert getattr(package, public) is not None, f"{name}.{public}"
        assert set(package.__all__) <= set(dir(package))
        with pytest.raises(AttributeError):
            package.no_such_name  # noqa: B018


# --- runs through a pool --------------------------------------------------------------------


def test_a_pool_serves_runs_of_different_plans(installation, make_project, study, tmp_path):
    make_project(participant_pattern=r"TP-\d{4}")
    with WorkerPool(2) as pool, _deadline(120):
        pids = pool.pids
        assert len(pids) == 2
        for participant in ("TP-0001", "TP-0002"):
            out = tmp_path / participant
            summary = deidentify_tree(installation, "TESTPROJ", participant, None, study, out,
                                      pool=pool)
            assert (summary.stored, summary.rejected) == (FILES, [])
            written = sorted(out.rglob("*.dcm"))
            assert len(written) == FILES
            assert {dcmread(p).PatientID for p in written} == {participant}
        # A small run also goes to the started pool (its workers have pydicom loaded).
        small = deidentify_tree(installation, "TESTPROJ", "TP-0003", None,
                                next(study.iterdir()), tmp_path / "one", pool=pool)
        assert small.stored == 1
        assert pool.pids == pids
    _end_soon(pids)


def test_the_project_s_own_profile_reaches_the_workers(installation, make_project, study,
                                                       tmp_path):
    make_project()
    set_deid_profile(installation, "TESTPROJ",
                     "tags:\n  - tag: StudyDescription\n    action: set\n    value: BY PROFILE\n")
    with WorkerPool(2) as pool, _deadline(120):
        deidentify_tree(installation, "TESTPROJ", "TP-0001", None, study, tmp_path / "out",
                        pool=pool)
    written = sorted((tmp_path / "out").rglob("*.dcm"))
    assert len(written) == FILES
    assert {dcmread(p).StudyDescription for p in written} == {"BY PROFILE"}


def test_same_results_with_and_without_a_pool(installation, make_project, study):
    make_project()
    with WorkerPool(2) as pool, _deadline(120):
        pooled = import_paths(installation, "TESTPROJ", "TP-0001", "baseline", [study],
                              pool=pool)
    alone = import_paths(installation, "TESTPROJ", "TP-0001", "baseline", [study], workers=1)
    assert (pooled.stored, pooled.rejected, pooled.studies, pooled.series) == (FILES, [], 1, 2)
    assert (alone.stored, alone.present) == (0, FILES), "the same files, stored identically"


def test_a_pool_of_one_forks_nothing(installation, make_project, study, tmp_path):
    make_project()
    with WorkerPool(1) as pool:
        assert not pool.started and pool.pids == []
        summary = deidentify_tree(installation, "TESTPROJ", "TP-0001", None, study,
                                  tmp_path / "out", pool=pool, workers=4)
    assert summary.stored == FILES


# --- failures -------------------------------------------------------------------------------


def test_a_failing_file_is_a_rejection(installation, make_project, study, monkeypatch):
    make_project()
    real = worker_module.Worker._store

    def failing(self, name, data):
        if name.endswith("_1_3.dcm"):
            raise RuntimeError("Testesen^Test")  # a value: must not reach the reason
        return real(self, name, data)

    monkeypatch.setattr(worker_module.Worker, "_store", failing)
    with _deadline(120):
        summary = import_paths(installation, "TESTPROJ", "TP-0001", "baseline", [study],
                               workers=2)
    assert summary.stored == FILES - 1
    [rejection] = summary.rejected
    assert rejection.reason == "could not be de-identified (RuntimeError)"


def test_a_dying_worker_stops_the_run_with_an_error(installation, make_project, study,
                                                    monkeypatch):
    make_project()
    monkeypatch.setattr(worker_module.Worker, "process", lambda self, source: os._exit(3))
    with _deadline(60), pytest.raises(WorkerError, match="ended unexpectedly"):
        import_paths(installation, "TESTPROJ", "TP-0001", "baseline", [study], workers=2)


@pytest.mark.parametrize("which", [0, 1], ids=["first worker", "one it forked"])
def test_a_killed_worker_stops_the_run_with_an_error(which, installation, make_project,
                                                     study, tmp_path):
    make_project()
    with WorkerPool(2) as pool, _deadline(60):
        pids = pool.pids
        os.kill(pids[which], signal.SIGKILL)
        with pytest.raises(WorkerError, match="ended unexpectedly"):
            deidentify_tree(installation, "TESTPROJ", "TP-0001", None, study,
                            tmp_path / "out", pool=pool)
        assert not pool.started, "the failed run ended the pool"
    _end_soon(pids)


def test_a_task_failing_outside_a_file_is_an_error(installation, make_project, study,
                                                   monkeypatch):
    make_project()

    def broken(self, plan):
        raise KeyError("Testesen^Test")

    monkeypatch.setattr(worker_module.Worker, "__init__", broken)
    with _deadline(60), pytest.raises(WorkerError) as caught:
        import_paths(installation, "TESTPROJ", "TP-0001", "baseline", [study], workers=2)
    assert str(caught.value) == "a worker process failed (KeyError)", "no value quoted"


def test_a_worker_s_rpacs_error_reaches_the_parent_as_itself(installation, make_project,
                                                            study, monkeypatch):
    make_project()

    def refused(self, plan):
        raise InvalidInputError(["profile: tag (0008,0080): unknown action"])

    monkeypatch.setattr(worker_module.Worker, "__init__", refused)
    with _deadline(60), pytest.raises(InvalidInputError, match="unknown action"):
        import_paths(installation, "TESTPROJ", "TP-0001", "baseline", [study], workers=2)


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_an_error_in_the_parent_ends_the_workers(error):
    with pytest.raises(error), WorkerPool(2) as pool:
        pids = pool.pids
        assert len(pids) == 2 and not any(_gone(pid) for pid in pids)
        raise error()
    _end_soon(pids)
    assert not pool.started


def test_an_error_in_the_parent_mid_run_ends_the_workers(installation, make_project, study,
                                                        tmp_path):
    make_project()

    def interrupted(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), _deadline(60), WorkerPool(2) as pool:
        pids = pool.pids
        deidentify_tree(installation, "TESTPROJ", "TP-0001", None, study, tmp_path / "out",
                        pool=pool, progress=interrupted)
    _end_soon(pids)


def test_workers_end_when_the_parent_is_killed(tmp_path):
    """No orphans: a worker whose parent died reads the end of its pipe and exits."""
    code = ("import os, sys\n"
            "from rpacs.ingest.pool import WorkerPool\n"
            "pool = WorkerPool(2).start()\n"
            "print(' '.join(map(str, pool.pids)), flush=True)\n"
            "sys.stdin.read()\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pids = [int(p) for p in parent.stdout.readline().split()]
    parent.kill()
    parent.wait()
    _end_soon(pids)
