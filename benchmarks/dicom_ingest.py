"""C-STORE throughput of the rpacs gateway against DCMTK's ``storescp`` (issue 5's target).

Generates N (default 2,000) 256×256 16-bit MR files with :mod:`rpacs.demo.synthetic` and
sends them with DCMTK's ``storescu`` over one association, first to ``storescp`` writing to
disk, then to the rpacs gateway (started in this process, writing into its quarantine).
Both run on this machine with Nagle's algorithm off for DCMTK (``TCP_NODELAY=1``; without it
every storescp response waits for a delayed ACK, ~40 ms). Times are storescu's wall time:
every instance written and acknowledged. Prints instances/s and MB/s of each and the ratio;
the target is rpacs ≥ 0.5 × storescp.

On a shared machine the load changes from one second to the next: the two run in turn,
``--rounds`` times (default 3), and the ratio printed is the median of the rounds' ratios.
CPU time per instance (storescp's process; rpacs's process, all threads) is printed too:
it depends much less on the load than the wall time.

    .venv/bin/python benchmarks/dicom_ingest.py [--files 2000] [--rounds 3] [--json]
                                                [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rpacs.demo import write_mr_study
from rpacs.installation import Installation
from rpacs.net import GatewayConfig, start_gateway
from rpacs.quarantine import Quarantine
from rpacs.settings import Settings

REPOSITORY = Path(__file__).resolve().parent.parent
SERIES = 5
TARGET = 0.5
ENV = {**os.environ, "TCP_NODELAY": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def send(port: int, source: Path, called: str) -> float:
    start = time.perf_counter()
    result = subprocess.run(["storescu", "-aec", called, "+sd", "127.0.0.1", str(port),
                             str(source)], env=ENV, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"storescu failed: {result.stderr[-500:]}")
    return elapsed


def run_storescp(source: Path, work: Path) -> tuple[float, float]:
    """storescu's wall time and storescp's CPU time (seconds)."""
    out = work / "storescp-out"
    out.mkdir(parents=True)
    port = free_port()
    scp = subprocess.Popen(["storescp", "-od", str(out), str(port)], env=ENV,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["echoscu", "127.0.0.1", str(port)], env=ENV,
                             capture_output=True, check=False).returncode != 0:
            if time.monotonic() > deadline:
                sys.exit("storescp did not start")
            time.sleep(0.1)
        elapsed = send(port, source, "ANY-SCP")
    finally:
        scp.terminate()
        _, _, usage = os.wait4(scp.pid, 0)
    return elapsed, usage.ru_utime + usage.ru_stime


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_rpacs(source: Path, work: Path, count: int) -> tuple[float, float]:
    """storescu's wall time and the CPU time of this process while receiving (seconds)."""
    settings = Settings(home=work / "home", database_url=None, config=None, workers=1)
    inst = Installation.open(settings)
    gateway = start_gateway(inst, GatewayConfig(host="127.0.0.1", port=0, study_timeout=3600))
    try:
        cpu = cpu_seconds()
        elapsed = send(gateway.port, source, "RPACS")
        gateway.quarantine.flush()
        cpu = cpu_seconds() - cpu
        images = sum(e.images for e in Quarantine(inst).entries())
        if images != count:
            sys.exit(f"rpacs recorded {images} of {count} instances")
        return elapsed, cpu
    finally:
        gateway.stop()
        inst.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--work", type=Path, default=REPOSITORY / "bench-work")
    args = parser.parse_args()
    if shutil.which("storescu") is None:
        sys.exit("DCMTK is needed (make system-packages installs it)")
    args.work.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dicom-ingest-", dir=args.work))
    try:
        source = work / "source"
        write_mr_study(source, n_series=SERIES, slices=args.files // SERIES)
        files = sorted(p for p in source.rglob("*") if p.is_file())
        megabytes = sum(p.stat().st_size for p in files) / 1e6
        n = len(files)
        rounds = []
        for number in range(max(1, args.rounds)):
            storescp, storescp_cpu = run_storescp(source, work / f"round-{number}-storescp")
            rpacs, rpacs_cpu = run_rpacs(source, work / f"round-{number}-rpacs", n)
            rounds.append({
                "storescp_per_s": round(n / storescp, 1), "rpacs_per_s": round(n / rpacs, 1),
                "ratio": round(storescp / rpacs, 3),
                "storescp_cpu_ms": round(1e3 * storescp_cpu / n, 2),
                "rpacs_cpu_ms": round(1e3 * rpacs_cpu / n, 2),
                "load": round(os.getloadavg()[0], 2),
            })
        ratio = statistics.median(r["ratio"] for r in rounds)
        best_storescp = max(r["storescp_per_s"] for r in rounds)
        best_rpacs = max(r["rpacs_per_s"] for r in rounds)
        report: dict[str, Any] = {
            "instances": n, "megabytes": round(megabytes, 1), "rounds": rounds,
            "storescp_per_s": best_storescp, "rpacs_per_s": best_rpacs,
            "storescp_mb_s": round(megabytes * best_storescp / n, 1),
            "rpacs_mb_s": round(megabytes * best_rpacs / n, 1),
            "ratio": ratio, "target": TARGET,
        }
        if args.json:
            print(json.dumps(report, indent=2))
            return
        print(f"{n} instances ({megabytes:.0f} MB) over one association, on this machine "
              f"({len(rounds)} rounds, in turn):")
        for number, r in enumerate(rounds, 1):
            print(f"  round {number}: storescp {r['storescp_per_s']:>6}/s "
                  f"({r['storescp_cpu_ms']} ms CPU each), rpacs {r['rpacs_per_s']:>6}/s "
                  f"({r['rpacs_cpu_ms']} ms CPU each), ratio {r['ratio']:.2f}, "
                  f"load {r['load']}")
        print(f"  storescp -od : {best_storescp:>7} instances/s {report['storescp_mb_s']:>6} MB/s"
              " (best round)")
        print(f"  rpacs scp    : {best_rpacs:>7} instances/s {report['rpacs_mb_s']:>6} MB/s"
              " (best round)")
        verdict = "PASS" if ratio >= TARGET else "MISS"
        print(f"  ratio rpacs/storescp = {ratio:.2f}, median of the rounds "
              f"(target >= {TARGET}) {verdict}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
