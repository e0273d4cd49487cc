"""Packages: a folder, one zip, a zip per participant or per study — reproducibly.

Zips list their entries sorted by name, with one fixed timestamp (1980-01-01, the zip
format's first), fixed permissions and no extra fields, so the same files always give the
same zip bytes; ZIP64 records are used where an entry or the archive outgrows the classic
format. DICOM and NIfTI entries are stored (they are compressed already, or compress little
and are read by tools that seek); text files are deflated. Every file is written under a
temporary name and renamed into place.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .content import ManifestRow

FIXED_TIME = (1980, 1, 1, 0, 0, 0)
MANIFEST = "manifest.csv"
PARTICIPANTS = "participants.tsv"
README = "README.txt"
RESERVED_NAMES = frozenset({MANIFEST, PARTICIPANTS, README, "DICOMDIR"})
_STORED_SUFFIXES = (".dcm", ".nii.gz", ".nii", ".gz", ".zip")
_CHUNK = 1 << 20


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """``data`` under ``path``, complete or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, mode)  # the umask must not widen or narrow what was asked for
    os.replace(tmp, path)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Span:
    """Bytes ``offset`` to ``offset + size`` of a file: one entry's data among others.

    The workers of a zip package append the files of a series part to one blob instead
    of creating a file each: creating thousands of small files costs more than writing
    their bytes.
    """

    path: Path
    offset: int
    size: int


def write_zip(target: Path, entries: Mapping[str, Path | Span]) -> None:
    """A reproducible zip of ``entries`` (name in the zip → file or span of one), written
    atomically."""
    tmp = target.with_name(f".{target.name}.part")
    blobs: dict[Path, BinaryIO] = {}
    try:
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as archive:
            for name in sorted(entries):
                source = entries[name]
                info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
                info.create_system = 3
                info.external_attr = 0o100644 << 16
                stored = name.endswith(_STORED_SUFFIXES) or "." not in name.rsplit("/", 1)[-1]
                info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
                if isinstance(source, Span):
                    info.file_size = source.size
                    blob = blobs.get(source.path)
                    if blob is None:
                        blob = blobs[source.path] = open(source.path, "rb")  # noqa: SIM115
                    blob.seek(source.offset)
                    data = blob.read(source.size)
                    if len(data) != source.size:
                        raise OSError(f"{source.path}: ends before the entry {name}")
                    with archive.open(info, "w") as dst:
                        dst.write(data)
                    continue
                info.file_size = source.stat().st_size
                with open(source, "rb") as src, archive.open(info, "w") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        for blob in blobs.values():
            blob.close()
    os.replace(tmp, target)


def manifest_text(rows: Iterable[ManifestRow], zipped: bool) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["path", "participant", "event", "modality", "series", "sha256"]
    writer.writerow([*header, "zip"] if zipped else header)
    for row in sorted(rows, key=lambda r: (r.container, r.path)):
        cells = [row.path, row.participant, row.event, row.modality, row.series, row.sha256]
        writer.writerow([*cells, row.container] if zipped else cells)
    return out.getvalue()


def participants_text(ids: Iterable[str], columns: tuple[str, ...],
                      added: Mapping[str, Mapping[str, str]]) -> str:
    """``participant_id`` then the spec's added columns, one row per exported participant."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(["participant_id", *columns])
    for participant in sorted(ids):
        writer.writerow([participant, *(added.get(participant, {}).get(c, "")
                                        for c in columns)])
    return out.getvalue()


def write_dicomdir(root: Path, files: list[Path], fileset_uid: str) -> dict[Path, Path]:
    """Move ``files`` (DICOM, under ``root``) into a PS3.10 file-set with a DICOMDIR.

    Files are added in sorted order and the file-set UID is given, so the same files give
    the same DICOMDIR. Returns old path → new path.
    """
    from pydicom import dcmread
    from pydicom.fileset import FileSet

    staging = root.with_name(root.name + ".fileset")
    shutil.rmtree(staging, ignore_errors=True)
    fileset = FileSet()
    fileset.UID = fileset_uid
    by_uid: dict[str, Path] = {}
    for path in sorted(files):
        fileset.add(str(path))
        by_uid[str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = path
    fileset.write(str(staging))
    moved = {}
    for instance in fileset:
        moved[by_uid[instance.SOPInstanceUID]] = Path(instance.path)
    for path in files:
        path.unlink()
    for new in sorted(staging.rglob("*")):
        target = root / new.relative_to(staging)
        if new.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(new, target)
    shutil.rmtree(staging, ignore_errors=True)
    _remove_empty_dirs(root)
    return {old: root / new.relative_to(staging) for old, new in moved.items()}


def _remove_empty_dirs(root: Path) -> None:
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
