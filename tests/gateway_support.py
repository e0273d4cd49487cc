"""Helpers of the gateway tests: free ports, DCMTK clients, waiting for the monitor."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

#: DCMTK leaves Nagle's algorithm on unless told: every response would wait ~40 ms.
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dcmtk(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, env=DCMTK_ENV,
                          timeout=timeout, check=False)


def storescu(port: int, *paths: Path, calling: str = "SENDER", called: str = "RPACS"
             ) -> subprocess.CompletedProcess[str]:
    return dcmtk("storescu", "-aet", calling, "-aec", called, "+sd", "127.0.0.1", str(port),
                 *map(str, paths))


def wait_for(condition: Callable[[], object], timeout: float = 30, poll: float = 0.05
             ) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(poll)
