"""The file store: atomic, never overwriting, on both of its ways of writing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rpacs.archive import FileStore, PutOutcome, write_runs
from rpacs.archive import store as store_module


@pytest.fixture(params=["unnamed", "named"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> FileStore:
    """A store that writes unnamed files where the system allows, or named temporary ones."""
    root = tmp_path / "store"
    if request.param == "named":
        store_module._NO_UNNAMED.add(root)
        request.addfinalizer(lambda: store_module._NO_UNNAMED.discard(root))
    return FileStore(root, tmp_path / "tmp")


def test_a_put_writes_the_file_once_and_compares_later_puts(store: FileStore):
    relative = "P/1.2/1.2.3/1.2.3.4.dcm"
    assert store.put(relative, b"first") is PutOutcome.CREATED
    assert store.path_of(relative).read_bytes() == b"first"
    assert stat.S_IMODE(store.path_of(relative).stat().st_mode) == 0o640
    assert store.put(relative, b"first") is PutOutcome.IDENTICAL
    assert store.put(relative, b"other") is PutOutcome.CONFLICT
    assert store.path_of(relative).read_bytes() == b"first"  # never overwritten
    assert not store.tmp_dir.exists() or not list(store.tmp_dir.glob("*"))  # nothing left


def test_the_temporary_folder_may_vanish_between_runs(store: FileStore):
    assert store.put("a/1.dcm", b"x") is PutOutcome.CREATED
    if store.tmp_dir.exists():
        store.tmp_dir.rmdir()  # as rpacs deid removes DST/.rpacs-tmp at the end
    assert store.put("a/2.dcm", b"y") is PutOutcome.CREATED
    assert store.path_of("a/2.dcm").read_bytes() == b"y"


def test_a_leftover_temporary_name_is_stepped_over(tmp_path: Path):
    root = tmp_path / "store"
    store_module._NO_UNNAMED.add(root)
    try:
        store = FileStore(root, tmp_path / "tmp")
        store.tmp_dir.mkdir()
        # A killed earlier process with this process id left its next names behind.
        counter = next(store_module._COUNTER)
        for n in range(counter + 1, counter + 4):
            (store.tmp_dir / f"put-{os.getpid()}-{n}.part").write_bytes(b"stale")
        assert store.put("b/1.dcm", b"fresh") is PutOutcome.CREATED
        assert store.path_of("b/1.dcm").read_bytes() == b"fresh"
        assert len(list(store.tmp_dir.glob("put-*.part"))) == 3  # the leftovers only
    finally:
        store_module._NO_UNNAMED.discard(root)


@pytest.mark.skipif(not getattr(os, "O_TMPFILE", 0) or not Path("/proc/self/fd").is_dir(),
                    reason="unnamed files need Linux O_TMPFILE and /proc")
def test_on_linux_the_unnamed_way_is_the_one_taken(tmp_path: Path):
    # A silent fallback once hid that linking the unnamed file never worked (EXDEV).
    store = FileStore(tmp_path / "store", tmp_path / "tmp")
    assert store.put("c/1.dcm", b"data") is PutOutcome.CREATED
    assert store.root not in store_module._NO_UNNAMED
    assert not store.tmp_dir.exists()  # no named temporary file was needed
    assert store_module.link_unnamed(store.path_of("c/1.dcm"), b"again", 0o640) is False


def _written_runs(path: Path, runs: list[bytes | memoryview]) -> bytes:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        write_runs(fd, runs)
    finally:
        os.close(fd)
    return path.read_bytes()


@pytest.mark.parametrize(("runs_per_call", "bytes_per_call"), [(1024, 1 << 30), (3, 10)],
                         ids=["as on Linux", "small limits"])
def test_write_runs_goes_on_where_writev_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 runs_per_call: int, bytes_per_call: int):
    monkeypatch.setattr(store_module, "_RUNS_PER_CALL", runs_per_call)
    monkeypatch.setattr(store_module, "_BYTES_PER_CALL", bytes_per_call)
    real = os.writev
    calls = []

    def at_most_seven(fd: int, buffers: list[bytes | memoryview]) -> int:
        # writev(2) may write less than it is given, ending anywhere, mid-run included.
        calls.append(fd)
        assert len(calls) < 1000, "write_runs makes no progress"
        assert len(buffers) <= runs_per_call
        assert sum(len(b) for b in buffers) <= bytes_per_call
        return real(fd, [b"".join(bytes(b) for b in buffers)[:7]])

    monkeypatch.setattr(os, "writev", at_most_seven)
    runs = [b"", b"abc", memoryview(b"0123456789")[2:], b"", b"x" * 25, b"yz",
            *(bytes([i]) for i in range(40))]
    assert _written_runs(tmp_path / "f", runs) == b"".join(runs)


def test_write_runs_takes_more_runs_than_one_call_may(tmp_path: Path):
    runs: list[bytes | memoryview] = [bytes([i % 251]) for i in range(3000)]
    assert _written_runs(tmp_path / "f", runs) == b"".join(runs)
