"""C-STORE throughput of the rpacs gateway against DCMTK's ``storescp`` (issue 5's target).

Generates N (default 2,000) 256×256 16-bit MR files with :mod:`rpacs.demo.synthetic` and
sends them with DCMTK's ``storescu`` over one association, first to ``storescp`` writing to
disk, then to the rpacs gateway (started in this process, writing into its quarantine).
Both run on this machine with Nagle's algorithm off for DCMTK (``TCP_NODELAY=1``; without it
every storescp response waits for a delayed ACK, ~40 ms). Times are storescu's wall time:
every instance written and acknowledged. Prints instances/s and MB/s of each and the ratio;
the target is rpacs ≥ 0.5 × storescp.

    .venv/bin/python benchmarks/dicom_ingest.py [--files 2000] [--json] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
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


def run_storescp(source: Path, work: Path) -> float:
    out = work / "storescp-out"
    out.mkdir()
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
        return send(port, source, "ANY-SCP")
    finally:
        scp.terminate()
        scp.wait()


def run_rpacs(source: Path, work: Path, count: int) -> float:
    settings = Settings(home=work / "home", database_url=None, config=None, workers=1)
    inst = Installation.open(settings)
    gateway = start_gateway(inst, GatewayConfig(host="127.0.0.1", port=0, study_timeout=3600))
    try:
        elapsed = send(gateway.port, source, "RPACS")
        gateway.quarantine.flush()
        images = sum(e.images for e in Quarantine(inst).entries())
        if images != count:
            sys.exit(f"rpacs recorded {images} of {count} instances")
        return elapsed
    finally:
        gateway.stop()
        inst.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=2000)
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
        storescp = run_storescp(source, work)
        rpacs = run_rpacs(source, work, n)
        report: dict[str, Any] = {
            "instances": n, "megabytes": round(megabytes, 1),
            "storescp_per_s": round(n / storescp, 1), "rpacs_per_s": round(n / rpacs, 1),
            "storescp_mb_s": round(megabytes / storescp, 1),
            "rpacs_mb_s": round(megabytes / rpacs, 1),
            "ratio": round(storescp / rpacs, 3), "target": TARGET,
        }
        if args.json:
            print(json.dumps(report, indent=2))
            return
        print(f"{n} instances ({megabytes:.0f} MB) over one association, on this machine:")
        print(f"  storescp -od : {report['storescp_per_s']:>7} instances/s "
              f"{report['storescp_mb_s']:>6} MB/s")
        print(f"  rpacs scp    : {report['rpacs_per_s']:>7} instances/s "
              f"{report['rpacs_mb_s']:>6} MB/s")
        verdict = "PASS" if report["ratio"] >= TARGET else "MISS"
        print(f"  ratio rpacs/storescp = {report['ratio']:.2f} (target >= {TARGET}) {verdict}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
