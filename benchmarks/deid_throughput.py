"""De-identification throughput against a plain copy of the same files (issue 2's targets).

Generates N (default 2,000) 256×256 16-bit MR files — several series, clinical headers with
planted identifying values, Siemens CSA headers — with :mod:`rpacs.demo.synthetic`, then
times in one run, three rounds: ``rpacs deid`` with 1 and with 2 workers, each into a
fresh folder, and ``rpacs import`` with 2 workers into a fresh RPACS_HOME, each right after
a ``cp -r`` of the same folder, its yardstick. A run's ratio is the median over the rounds
of its time over that of the copy just before it: the two meet the same state of the
file system, which drifts over a benchmark — creating files costs this machine's kernel
up to five times more once many were created or deleted recently, for cp as for rpacs.
Each run starts after a sync, so none pays for the previous one's write-back, and with
the input read once more, so that every run reads from memory and the comparison is of
the work, not of the disk. Times include starting the command, as a user would see them.
Prints files/s and the ratios, every round's times and those of its copies, and the
issue's targets (deid --workers 2 ≤ 3×, import ≤ 4×) with PASS or MISS; also each run's
CPU seconds and the load average, since on a shared machine the wall-clock ratios move
with the load.
Each command is also run on a folder of one file: that time is its fixed cost (starting
Python, SQLAlchemy, pydicom, the workers; exiting), and the rest of a run's time, per file,
is compared with cp -r's time per file — what a larger import converges to.

    .venv/bin/python benchmarks/deid_throughput.py [--files 2000] [--json] [--work DIR]

The work folder (default ``bench-work/`` in the repository, which git ignores) is removed
afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from statistics import median
from typing import Any

from rpacs.demo import write_mr_study

REPOSITORY = Path(__file__).resolve().parent.parent
#: Series in the generated study; the files are spread evenly over them.
SERIES = 5
#: Rounds of all runs; the median of each run counts.
ROUNDS = 3
TARGETS = {"deid --workers 2": 3.0, "import --workers 2": 4.0}
#: The reference C++ anonymizer on the same kind of data (PRODUCT.md), for comparison.
REFERENCE = "reference C++ anonymizer: 2.7× cp -r on one thread, 1.7× on two"


def _rpacs() -> list[str]:
    """The venv's ``rpacs`` console script, as a user runs it (the module if not installed)."""
    script = Path(sys.executable).with_name("rpacs")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "rpacs.cli.main"]


#: CPU seconds (user + system) of each timed command, by command: on a shared machine
#: they vary less than the wall-clock times, and show what a run costs whatever the load.
CPU_SECONDS: dict[str, float] = {}


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


#: The input files, read again before every timed run (see :func:`_run`).
WARM: list[Path] = []


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Seconds ``cmd`` took, and its stdout; exits with its stderr if it fails.

    Each run starts after a sync and with the input read once more: this machine's
    kernel reclaims page cache it deems cold (DAMON), so a warm-up at the start alone left
    later runs reading from the disk, and the comparison was of luck, not of work.
    """
    os.sync()
    for path in WARM:
        path.read_bytes()
    cpu = _cpu_of_children()
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    CPU_SECONDS[" ".join(cmd)] = _cpu_of_children() - cpu
    if done.returncode != 0:
        sys.exit(f"benchmark command failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return elapsed, done.stdout


def _checked(cmd: list[str], env: dict[str, str], files: int) -> tuple[float, float]:
    """Time an rpacs command run with ``--json`` and make sure it handled every file:
    (seconds, CPU seconds)."""
    elapsed, stdout = _run([*cmd, "--json"], env)
    summary = json.loads(stdout)
    if summary["stored"] != files or summary["rejected"]:
        sys.exit(f"{' '.join(cmd[1:3])}: {summary['stored']} of {files} files written, "
                 f"{len(summary['rejected'])} rejected: the timing would mean nothing")
    return elapsed, CPU_SECONDS[" ".join([*cmd, "--json"])]


def _fixed_costs(sample: Path, work: Path, env: dict[str, str],
                 rpacs: list[str]) -> dict[str, float]:
    """Each run's fixed cost: the same command on a folder of one file (the median of
    three). What is left of a run's time is its cost per file, which a larger import
    spreads over more files; the report shows both, so that start-up and per-file work
    can each be compared with cp -r's."""
    one = work / "one"
    one.mkdir()
    shutil.copy2(sample, one / sample.name)
    WARM[:] = [one / sample.name]
    runs: dict[str, list[float]] = defaultdict(list)
    for attempt in range(3):
        runs["cp -r"].append(_run(["cp", "-r", str(one), str(work / f"one-cp{attempt}")], env)[0])
        for workers in (1, 2):
            runs[f"deid --workers {workers}"].append(_run(
                [*rpacs, "deid", str(one), str(work / f"one-deid{workers}-{attempt}"),
                 "--project", "BENCH", "--participant", "B-0001", "--workers", str(workers)],
                env)[0])
        # Into the archive that holds it already: start-up and the index, no new file.
        runs["import --workers 2"].append(_run(
            [*rpacs, "import", str(one), "--project", "BENCH", "--participant", "B-0001",
             "--event", "baseline", "--workers", "2"], env)[0])
    return {name: sorted(times)[1] for name, times in runs.items()}


def measure(files: int, work: Path) -> dict[str, Any]:
    """Generate the input in ``work`` and time every run; the report as a dict."""
    load = os.getloadavg()
    src = work / "src"
    start = time.perf_counter()
    write_mr_study(src, seed=7, n_series=SERIES, slices=max(1, files // SERIES))
    generated = time.perf_counter() - start
    inputs = sorted(src.rglob("*.dcm"))
    WARM[:] = inputs
    count = len(inputs)
    size_mb = sum(p.stat().st_size for p in inputs) / 1e6
    rpacs = _rpacs()
    # Every run three times, each right after its own cp -r, each round with a fresh
    # RPACS_HOME; the medians count. The file system and the page cache of a shared virtual
    # machine make one run faster or slower than the next by a factor of two and more, the
    # same for cp as for rpacs when they run side by side.
    times: dict[str, list[tuple[float, float]]] = defaultdict(list)
    #: Each rpacs run's own yardstick: a cp -r of the same input just before it.
    paired: dict[str, list[float]] = defaultdict(list)
    for attempt in range(ROUNDS):
        env = {**os.environ, "RPACS_HOME": str(work / f"home{attempt}")}
        env.pop("RPACS_DATABASE_URL", None)  # the benchmark's own SQLite index, never a real one
        _run([*rpacs, "project", "create", "BENCH", "--rek", "2024/1", "--pi-name", "PI",
              "--pi-email", "pi@example.org", "--start", "2024-01-01", "--end", "2030-01-01",
              "--participant-pattern", r"B-\d{4}", "--events", "baseline"], env)
        commands = {
            f"deid --workers {workers}": [
                *rpacs, "deid", str(src), str(work / f"deid{workers}-{attempt}"), "--project",
                "BENCH", "--participant", "B-0001", "--workers", str(workers)]
            for workers in (1, 2)}
        commands["import --workers 2"] = [
            *rpacs, "import", str(src), "--project", "BENCH", "--participant", "B-0001",
            "--event", "baseline", "--workers", "2"]
        for name, command in commands.items():
            copy = ["cp", "-r", str(src), str(work / f"copy{attempt}-{name.split()[0]}"
                                               f"{name[-1]}")]
            copied = _run(copy, env)[0]
            times["cp -r"].append((copied, CPU_SECONDS[" ".join(copy)]))
            paired[name].append(copied)
            times[name].append(_checked(command, env, count))
    seconds = {name: median([t for t, _ in runs]) for name, runs in times.items()}
    cpu = {name: median([c for _, c in runs]) for name, runs in times.items()}
    fixed = _fixed_costs(inputs[0], work, env, rpacs)  # with the last round's archive
    runs: dict[str, dict[str, Any]] = {}
    for name, sec in seconds.items():
        row: dict[str, Any] = {"seconds": round(sec, 3), "files_per_second": round(count / sec),
                               "cpu_seconds": round(cpu[name], 2),
                               "fixed_seconds": round(fixed[name], 3),
                               "rounds_seconds": [round(t, 2) for t, _ in times[name]]}
        if name in paired:
            # The median of each round's ratio to the cp -r run just before it: the two
            # ran on the same state of the file system, which drifts over a benchmark
            # (creating files costs the kernel more once it has created many).
            ratios = [t / c for (t, _), c in zip(times[name], paired[name], strict=True)]
            row["paired_cp_seconds"] = [round(c, 2) for c in paired[name]]
            row["round_ratios"] = [round(r, 2) for r in ratios]
            row["ratio_to_cp"] = median(ratios)
            row["per_file_ratio_to_cp"] = round(median([
                max(t - fixed[name], 0.0) / max(c - fixed["cp -r"], 1e-9)
                for (t, _), c in zip(times[name], paired[name], strict=True)]), 2)
        else:
            row["ratio_to_cp"], row["per_file_ratio_to_cp"] = 1.0, 1.0
        if name in TARGETS:
            row |= {"target": TARGETS[name], "meets_target": row["ratio_to_cp"] <= TARGETS[name]}
        row["ratio_to_cp"] = round(row["ratio_to_cp"], 2)
        runs[name] = row
    return {"files": count, "megabytes": round(size_mb, 1), "cpus": os.cpu_count(),
            "generated_files_per_second": round(count / generated),
            "load_average_at_start": [round(x, 2) for x in load],
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()], "runs": runs}


def render(report: dict[str, Any]) -> str:
    lines = [
        f"{report['files']} files, {report['megabytes']:.0f} MB, {report['cpus']} CPUs; "
        f"generated at {report['generated_files_per_second']} files/s; times include "
        "starting the command",
        f"load average {report['load_average_at_start']} at the start, "
        f"{report['load_average_at_end']} at the end (a busy machine slows rpacs more than cp)",
        f"{'run':<22} {'seconds':>8} {'files/s':>8} {'× cp -r':>8} {'CPU s':>6} "
        f"{'fixed s':>8} {'per file × cp':>14}  {'rounds (cp -r before)':<30} target",
    ]
    for name, row in report["runs"].items():
        target = ""
        if "target" in row:
            target = f"≤ {row['target']:.0f}× {'PASS' if row['meets_target'] else 'MISS'}"
        rounds = " ".join(f"{t:.2f}" for t in row["rounds_seconds"])
        if "paired_cp_seconds" in row:
            rounds = " ".join(f"{t:.2f} ({c:.2f})" for t, c in zip(
                row["rounds_seconds"], row["paired_cp_seconds"], strict=True))
        lines.append(f"{name:<22} {row['seconds']:>8.2f} {row['files_per_second']:>8} "
                     f"{row['ratio_to_cp']:>8.2f} {row['cpu_seconds']:>6.2f} "
                     f"{row['fixed_seconds']:>8.2f} {row['per_file_ratio_to_cp']:>14.2f}  "
                     f"{rounds:<30} {target}")
    lines.append("× cp -r: the median of each round's time over that of the cp -r just before "
                 "it; fixed s: the same command on one file (start-up and exit); per file × "
                 "cp: (seconds - fixed) per file, against cp -r's")
    lines.append(f"({REFERENCE})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000, help="files to generate (2000)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--work", type=Path, default=REPOSITORY / "bench-work",
                        help="folder for the input and outputs, removed afterwards")
    args = parser.parse_args()
    if args.files < 1:
        parser.error("--files must be at least 1")
    args.work.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="deid-throughput-", dir=args.work))
    try:
        report = measure(args.files, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not any(args.work.iterdir()):
            args.work.rmdir()
    print(json.dumps(report, indent=2) if args.json else render(report))


if __name__ == "__main__":
    main()
