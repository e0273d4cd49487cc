"""Where an import worker's and an export worker's time per file goes, stage by stage.

Generates N (default 2,000) 256×256 16-bit MR files with :mod:`rpacs.demo.synthetic` (the
files of ``deid_throughput.py``), reads them into memory, and runs the import worker's
stages over them once each, as a worker meets them (first pass: its memos start empty),
in a fresh interpreter: de-identification on the bytes (:func:`rpacs.deid.deidentify_raw`,
output joined), the tag inventory's groups, the index fields, the SHA-256, and the
outcomes' pickle for the pipe (a task's worth at a time, as the pool sends them back).

Then it imports the files into a project of a throwaway home and runs the export
worker's byte path over the stored files (the spec of ``export_throughput.py``, series by
series, each file cut like the series' last one of its size, as the worker does): the cut
(:func:`rpacs.deid.parse_plain`), the rewrite's decisions (``Rewriter.apply_raw``), the
written runs (:func:`rpacs.deid.write_plain`), the residual-PHI scan of the written
elements and of the header's bytes, the traits, and the SHA-256. These are the steps of
:func:`rpacs.export.instance.export_raw`, timed one by one.

Prints the CPU microseconds per file of each stage (user + system, ``time.process_time``)
and the total against reading the same files from the page cache, measured in the same
run. No disk writes are timed: ``deid_throughput.py`` and ``export_throughput.py`` time
whole commands. CPU time per file moves less with the machine's load than wall-clock
time, which is what makes one stage's change visible.

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

from export_throughput import SPEC

from rpacs.archive import FileStore, StoredInstance
from rpacs.deid import deidentify_raw, keep_by_size, parse_plain, write_plain
from rpacs.deid.identity import Identity
from rpacs.demo import write_mr_study
from rpacs.export import load_spec
from rpacs.export.instance import SCANNED_VRS, TRAITS, _text, _without_pixels, _written
from rpacs.export.rewrite import Rewriter
from rpacs.export.scan import InstanceScan
from rpacs.export.service import _prepare
from rpacs.ingest import import_paths
from rpacs.ingest.plan import WorkPlan
from rpacs.ingest.service import MAX_CHUNK_SIZE
from rpacs.ingest.worker import Worker, _fast_fields, inventory_groups
from rpacs.installation import Installation
from rpacs.projects import ProjectSpec, create_project
from rpacs.settings import Settings

SERIES = 5


def _read(paths: list[Path]) -> tuple[list[bytes], float]:
    """The files' bytes, and the CPU seconds reading them took."""
    start = time.process_time()
    datas = [path.read_bytes() for path in paths]
    return datas, time.process_time() - start


def _per_file(stages: dict[str, float], count: int, read: float) -> dict[str, Any]:
    total = sum(stages.values())
    return {"files": count,
            "read_us_per_file": round(read / count * 1e6, 1),
            "stages_us_per_file": {k: round(v / count * 1e6, 1) for k, v in stages.items()},
            "total_us_per_file": round(total / count * 1e6, 1),
            "ratio_to_read": round(total / read, 2) if read else None}


def measure(files: int, work: Path) -> dict[str, Any]:
    write_mr_study(work / "src", seed=7, n_series=SERIES, slices=max(1, files // SERIES))
    paths = sorted((work / "src").rglob("*.dcm"))
    datas, read = _read(paths)
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
    return {"import": {**_per_file(stages, len(datas), read), "declined": declined},
            "export": measure_export(work)}


def measure_export(work: Path) -> dict[str, Any]:
    """The export worker's byte path over the files in ``work / "src"``, once imported."""
    inst = Installation.open(Settings(home=work / "home", database_url=None, config=None,
                                      workers=1))
    try:
        create_project(inst, ProjectSpec(
            acronym="BENCH", rek="2024/1", pi_name="PI", pi_email="pi@example.org",
            start_date="2024-01-01", end_date="2030-01-01", participant_pattern=r"B-\d{4}",
            events=["baseline"]))
        summary = import_paths(inst, "BENCH", "B-0001", "baseline", [work / "src"], workers=1)
        if not summary.ok:
            raise SystemExit(f"import for the export stages: {summary.rejected[0].reason}")
        spec_file = work / "spec.yaml"
        spec_file.write_text(SPEC.format(name="stages", formats="dicom", package="directory"))
        prepared = _prepare(inst, "BENCH", load_spec(str(spec_file)), work / "out", None,
                            None)
        store = inst.settings.store_dir
    finally:
        inst.close()
    planned = [(series, instance) for series in prepared.plan.series
               for instance in series.instances]
    datas, read = _read([store / instance.stored_path for _, instance in planned])
    rewriter, scanner = Rewriter(prepared.rewrite), InstanceScan(prepared.scan)
    stages = dict.fromkeys(("parse_plain", "apply_raw", "write_plain", "scan", "traits",
                            "sha256"), 0.0)
    declined = 0
    seen: dict[str, dict[int, Any]] = {}
    for (series, instance), data in zip(planned, datas, strict=True):
        subject = prepared.subjects[series.research_id]
        kept = seen.setdefault(series.key, {})
        t0 = time.process_time()
        plain = parse_plain(data, kept.get(len(data)))
        t1 = time.process_time()
        changes = rewriter.apply_raw(data, plain, subject) if plain is not None else None
        if changes is None:
            declined += 1
            continue
        t2 = time.process_time()
        removed = changes.removed | changes.dropped if changes.dropped else changes.removed
        runs = write_plain(data, plain, removed, changes.overlay, changes.meta)
        t3 = time.process_time()
        archive_uids = changes.originals.uids | set(series.archive_uids)
        findings = scanner.scan_raw(_written(data, plain, changes, SCANNED_VRS), changes.codec,
                                    plain.implicit, instance.path, archive_uids,
                                    changes.originals.dates)
        if findings == []:
            findings = scanner.scan_bytes(_without_pixels(runs, plain, changes),
                                          instance.path, archive_uids, subject.research_id)
        t4 = time.process_time()
        {name: _text(data, plain, changes, tag) for name, tag in TRAITS.items()}
        t5 = time.process_time()
        digest = hashlib.sha256()
        for run in runs:
            digest.update(run)
        digest.hexdigest()
        t6 = time.process_time()
        keep_by_size(kept, len(data), plain)
        for name, spent in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5),
                               strict=True):
            stages[name] += spent
    return {**_per_file(stages, len(datas), read), "declined": declined}


def _render_part(title: str, part: dict[str, Any]) -> list[str]:
    lines = [f"{title}: {part['files']} files, first pass, CPU µs per file "
             f"({part['declined']} declined by the byte path)"]
    total = part["total_us_per_file"]
    for name, us in part["stages_us_per_file"].items():
        lines.append(f"  {name:<18} {us:>8.1f}  {us / total:>5.0%}" if total else
                     f"  {name:<18} {us:>8.1f}")
    lines.append(f"  {'total':<18} {total:>8.1f}")
    lines.append(f"  reading the files: {part['read_us_per_file']:.1f} µs per file; the "
                 f"stages take {part['ratio_to_read']}× that")
    return lines


def render(report: dict[str, Any]) -> str:
    return "\n".join([*_render_part("import worker", report["import"]),
                      *_render_part("export worker", report["export"])])


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
