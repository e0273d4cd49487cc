"""A real ``rpacs serve`` (or ``rpacs demo --serve``) on a free localhost port, for tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

SCRIPT = Path(sys.executable).with_name("rpacs")
#: How long a server may take to come up on a busy machine before the test gives up.
START_DEADLINE = 120.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running(args: list[str], env: dict[str, str], port: int,
            log: Path) -> Iterator[str]:
    """Start ``rpacs ARGS`` and yield its base URL once it answers; stop it afterwards."""
    with log.open("wb") as out:
        process = subprocess.Popen([str(SCRIPT), *args], env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_DEADLINE
        while True:
            if process.poll() is not None:
                raise AssertionError(f"rpacs {args[0]} ended: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/login", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"rpacs {args[0]} did not answer: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
