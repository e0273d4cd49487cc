"""Naming an import's input: which files of a tree become sources, in which order, and what
is refused by name before anything is read."""

from __future__ import annotations

import zipfile
from pathlib import Path

from rpacs.ingest.sources import RefusedSource, Source, iter_sources


def test_a_tree_is_named_in_a_stable_order_with_links_and_zips(tmp_path: Path):
    root = tmp_path / "in"
    for relative in ("b/c/3", "a/1.dcm", "b/2.dcm", "top.dcm"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(b"x")
    (root / "empty").mkdir()
    (root / "link.dcm").symlink_to("a/1.dcm")
    (root / "broken.dcm").symlink_to("nowhere")
    (root / "folder-link").symlink_to("b")  # not followed: b is named once
    with zipfile.ZipFile(root / "b" / "pack.zip", "w") as archive:
        archive.writestr("m/1.dcm", b"x")
        archive.writestr("../evil", b"x")
    (root / "fake.zip").write_bytes(b"not a zip")

    named = list(iter_sources([root, tmp_path / "missing"]))

    assert named == [
        RefusedSource(f"{root}/broken.dcm", "broken symbolic link"),
        # A .zip that is not one (a copy cut short, say) is refused, not skipped as not DICOM.
        RefusedSource(f"{root}/fake.zip", "not a readable zip file: damaged, cut short or "
                                          "not a zip at all (BadZipFile)"),
        Source(f"{root}/link.dcm"),
        Source(f"{root}/top.dcm"),
        Source(f"{root}/a/1.dcm"),
        Source(f"{root}/b/2.dcm"),
        RefusedSource(f"{root}/b/pack.zip!../evil",
                      "zip entry name points outside the archive; refused"),
        Source(f"{root}/b/pack.zip", "m/1.dcm"),
        Source(f"{root}/b/c/3"),
        RefusedSource(f"{tmp_path}/missing", "no such file or folder"),
    ]


def test_a_single_file_and_a_single_zip_are_sources(tmp_path: Path):
    (tmp_path / "one.dcm").write_bytes(b"x")
    with zipfile.ZipFile(tmp_path / "many.ZIP", "w") as archive:
        archive.writestr("b.dcm", b"x")
        archive.writestr("a.dcm", b"x")
    assert list(iter_sources([tmp_path / "one.dcm", tmp_path / "many.ZIP"])) == [
        Source(f"{tmp_path}/one.dcm"),
        Source(f"{tmp_path}/many.ZIP", "a.dcm"),
        Source(f"{tmp_path}/many.ZIP", "b.dcm"),
    ]


def test_names_under_the_current_folder_are_written_as_pathlib_writes_them(
        tmp_path: Path, monkeypatch):
    """``rpacs import .`` names ``a/1.dcm``, not ``./a/1.dcm``: the names a user sees in
    the summary and in rejections."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1.dcm").write_bytes(b"x")
    (tmp_path / "top.dcm").write_bytes(b"x")
    (tmp_path / "broken.dcm").symlink_to("nowhere")
    monkeypatch.chdir(tmp_path)
    assert list(iter_sources([Path(".")])) == [
        RefusedSource("broken.dcm", "broken symbolic link"),
        Source("top.dcm"),
        Source("a/1.dcm"),
    ]
    assert list(iter_sources([Path("a/")])) == [Source("a/1.dcm")]
