"""The quarantine's files: written whole under their final name, on both ways of writing."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from rpacs.quarantine import store as store_module
from rpacs.quarantine.store import QuarantineStore


@pytest.fixture(params=["unnamed", "named"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
          ) -> QuarantineStore:
    if request.param == "named":
        monkeypatch.setitem(store_module._UNNAMED, "works", False)
    return QuarantineStore(tmp_path / "quarantine", b"secret")


def test_put_writes_once_and_never_overwrites(store: QuarantineStore) -> None:
    assert store.put("study", "one.dcm", b"first") is True
    assert store.put("study", "one.dcm", b"second") is False
    assert store.read("study", "one.dcm") == b"first"
    path = store.path_of("study", "one.dcm")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir() if p.is_file()] == ["one.dcm"]


@pytest.mark.skipif(not sys.platform.startswith("linux") or not hasattr(os, "O_TMPFILE"),
                    reason="unnamed files are a Linux feature")
def test_on_linux_files_are_written_unnamed_and_linked_into_place(tmp_path: Path) -> None:
    # A silent fallback once hid that the link never worked: the named path leaves a
    # .partial folder behind, the unnamed one nothing but the file.
    store = QuarantineStore(tmp_path / "quarantine", b"secret")
    assert store.put("study", "one.dcm", b"data") is True
    assert store_module._UNNAMED["works"] is True
    assert sorted(p.name for p in (tmp_path / "quarantine" / "study").iterdir()) == ["one.dcm"]
