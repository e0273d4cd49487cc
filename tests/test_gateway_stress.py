"""The gateway under load and when killed: nothing lost, duplicated or left half-written."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pydicom import dcmread

from rpacs.installation import Installation
from rpacs.net import GatewayConfig, start_gateway
from rpacs.quarantine import Quarantine

from .dicom_factory import Instance, mr_dataset, uid, write
from .gateway_support import DCMTK_ENV, free_port, storescu, wait_for

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("storescu") is None, reason="needs DCMTK")]


def data_set_bytes(data: bytes) -> bytes:
    """A Part 10 file without preamble and file meta group (whose length is at 140)."""
    return data[144 + int.from_bytes(data[140:144], "little"):]


def small_study(folder: Path, study: int, count: int) -> list[Path]:
    return [write(mr_dataset(Instance(study, 1 + n // 100, n), rows=8, cols=8),
                  folder / f"{n}.dcm") for n in range(count)]


def test_four_senders_at_once_lose_and_duplicate_nothing(installation: Installation,
                                                         tmp_path: Path) -> None:
    for sender in range(4):
        small_study(tmp_path / f"s{sender}", study=10 + sender, count=500)
    gateway = start_gateway(installation, GatewayConfig(host="127.0.0.1", port=0,
                                                        study_timeout=3600))
    results: list[int] = []
    try:
        threads = [threading.Thread(target=lambda s=s: results.append(storescu(
            gateway.port, tmp_path / f"s{s}", calling=f"SENDER{s}").returncode))
            for s in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        gateway.quarantine.flush()
    finally:
        gateway.stop()
    assert results == [0, 0, 0, 0]
    entries = {e.study_uid: e for e in Quarantine(installation).entries()}
    assert sorted(entries) == sorted(uid(10 + s) for s in range(4))
    assert all(e.images == 500 and e.series == 5 for e in entries.values())
    assert {e.calling_ae for e in entries.values()} == {f"SENDER{s}" for s in range(4)}
    assert len(list(installation.settings.quarantine_dir.rglob("*.dcm"))) == 2000


def test_killed_mid_transfer_leaves_no_partial_file_and_a_resend_completes(
        installation: Installation, tmp_path: Path,
        subprocess_env: dict[str, str]) -> None:
    files = small_study(tmp_path / "in", study=20, count=300)
    port = free_port()
    rpacs = str(Path(sys.executable).parent / "rpacs")
    command = [rpacs, "scp", "--port", str(port), "--host", "127.0.0.1",
               "--study-timeout", "3600"]
    service = subprocess.Popen(command, env=subprocess_env, stderr=subprocess.PIPE)
    assert wait_for(lambda: subprocess.run(["echoscu", "127.0.0.1", str(port)],
                                           env=DCMTK_ENV, check=False,
                                           capture_output=True).returncode == 0, timeout=30)
    sender = subprocess.Popen(["storescu", "-aec", "RPACS", "+sd", "127.0.0.1", str(port),
                               str(tmp_path / "in")], env=DCMTK_ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = installation.settings.quarantine_dir
    assert wait_for(lambda: len(list(root.rglob("*.dcm"))) >= 30, timeout=60)
    service.send_signal(signal.SIGKILL)
    service.wait()
    sender.wait(timeout=60)
    kept = list(root.rglob("*.dcm"))
    assert 0 < len(kept) < 300
    originals = {dcmread(f).SOPInstanceUID: data_set_bytes(f.read_bytes()) for f in files}
    for path in kept:  # every file there is whole: the original's data set, byte for byte
        data = path.read_bytes()
        assert data_set_bytes(data) == originals[dcmread(path).SOPInstanceUID]
    assert not [p for p in root.rglob("*") if p.is_file() and p.suffix != ".dcm"]

    service = subprocess.Popen(command, env=subprocess_env, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: subprocess.run(["echoscu", "127.0.0.1", str(port)],
                                               env=DCMTK_ENV, check=False,
                                               capture_output=True).returncode == 0,
                        timeout=30)
        assert storescu(port, tmp_path / "in").returncode == 0
        time.sleep(0.5)  # the recorder's batch window
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=30)
    entries = Quarantine(installation).entries()
    assert [(e.images, e.series) for e in entries] == [(300, 3)]
    assert len(list(root.rglob("*.dcm"))) == 300
