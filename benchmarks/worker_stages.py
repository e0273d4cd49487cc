"""Where an import worker's time per file goes, stage by stage, in one process.

Generates N (default 2,000) 256×256 16-bit MR files with :mod:`rpacs.demo.synthetic` (the
files of ``deid_throughput.py``), reads them into memory, and runs the import worker's
stages over them once each, as a worker meets them (first pass: its memos start empty),
in a fresh interpreter: de-identification on the bytes (:func:`rpacs.deid.deidentify_raw`,
output joined), the tag inventory's groups, the index fields, the SHA-256, and the
outcomes' pickle for the pipe (a task's worth at a time, as the pool sends them back).
Prints the CPU microseconds per file of each stage (user + system, ``time.process_time``)
and the total against reading the same files from the page cache, measured in the same
run. No disk writes are timed: ``deid_throughput.py`` times whole commands.

    .venv/bin/python benchmarks/worker_stages.py [--files 2000] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from rpacs.archive import FileStore, StoredInstance
from rpacs.deid import deidentify_raw
from rpacs.deid.identity import Identity
from rpacs.demo import write_mr_study
from rpacs.ingest.plan import WorkPlan
from rpacs.ingest.service import MAX_CHUNK_SIZE
from rpacs.ingest.worker import Worker, _fast_fields, inventory_groups

SERIES = 5


def measure(files: int, work: Path) -> dict[str, Any]:
    write_mr_study(work / "src", seed=7, n_series=SERIES, slices=max(1, files // SERIES))
    paths = sorted((work / "src").rglob("*.dcm"))
    start = time.process_time()
    datas = [path.read_bytes() for path in paths]
    read = time.process_time() - start
    plan = WorkPlan(None, b"\x07" * 32, Identity("B-0001", "BENCH", "baseline"), 100,
                    b"\x09" * 32, FileStore(work / "out", work / "tmp"), "", index=True)
    worker = Worker(plan)
    stages = dict.fromkeys(("deidentify_raw", "inventory_groups", "index fields", "sha256",
                            "pickle"), 0.0)
    declined = 0
    outcomes: list[StoredInstance] = []
    for data in datas:
        t0 = time.process_time()
        fast = deidentify_raw(data, worker.deidentifier)
        if fast is None:
            declined += 1
            continue
        out = fast.data
        t1 = time.process_time()
        groups = inventory_groups(fast)
        t2 = time.process_time()
        fields = _fast_fields(fast)
        t3 = time.process_time()
        digest = hashlib.sha256(out).hexdigest()
        t4 = time.process_time()
        outcomes.append(StoredInstance(
            source="x.dcm", relative_path="s/s/s.dcm", size=len(out), sha256=digest,
            patient_key="", study_uid="s", series_uid="s", sop_uid="s", tag_groups=groups,
            **fields))
        if len(outcomes) == MAX_CHUNK_SIZE:
            pickle.dumps(outcomes, protocol=pickle.HIGHEST_PROTOCOL)
            outcomes.clear()
        t5 = time.process_time()
        for name, spent in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4),
                               strict=True):
            stages[name] += spent
    count = len(datas)
    total = sum(stages.values())
    return {"files": count, "declined": declined,
            "read_us_per_file": round(read / count * 1e6, 1),
            "stages_us_per_file": {k: round(v / count * 1e6, 1) for k, v in stages.items()},
            "total_us_per_file": round(total / count * 1e6, 1),
            "ratio_to_read": round(total / read, 2) if read else None}


def render(report: dict[str, Any]) -> str:
    lines = [f"{report['files']} files, first pass, CPU µs per file "
             f"({report['declined']} declined by the byte path)"]
    total = report["total_us_per_file"]
    for name, us in report["stages_us_per_file"].items():
        lines.append(f"  {name:<18} {us:>8.1f}  {us / total:>5.0%}" if total else
                     f"  {name:<18} {us:>8.1f}")
    lines.append(f"  {'total':<18} {total:>8.1f}")
    lines.append(f"  reading the files: {report['read_us_per_file']:.1f} µs per file; the "
                 f"stages take {report['ratio_to_read']}× that")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000, help="files to generate (2000)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    if args.files < 1:
        parser.error("--files must be at least 1")
    work = Path(tempfile.mkdtemp(prefix="worker-stages-"))
    try:
        report = measure(args.files, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2) if args.json else render(report))


if __name__ == "__main__":
    main()
