"""Packages: a folder, one zip, a zip per participant or per study — reproducibly.

Zips list their entries sorted by name, with one fixed timestamp (1980-01-01, the zip
format's first), fixed permissions and no extra fields, so the same files always give the
same zip bytes; ZIP64 records are used where an entry or the archive outgrows the classic
format. DICOM and NIfTI entries are stored (they are compressed already, or compress little
and are read by tools that seek); text files are deflated. Every file is written under a
temporary name and renamed into place.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import os
import shutil
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..archive import write_all
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
    their bytes. They also compute each entry's CRC-32 (``crc``) while the bytes are in
    their memory, in parallel, so that the zip is then written without reading them.
    """

    path: Path
    offset: int
    size: int
    crc: int | None = None


#: Sizes and offsets above this go into ZIP64 records (as Python's zipfile decides: some
#: readers take the classic 32-bit fields as signed).
ZIP64_LIMIT = (1 << 31) - 1
_ENTRIES_LIMIT = 0xFFFF
#: 1980-01-01 00:00:00 as MS-DOS date and time (FIXED_TIME).
_DOS_DATE = (FIXED_TIME[0] - 1980) << 9 | FIXED_TIME[1] << 5 | FIXED_TIME[2]
_DOS_TIME = FIXED_TIME[3] << 11 | FIXED_TIME[4] << 5 | FIXED_TIME[5] // 2
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_END = struct.Struct("<4s4H2LH")
_END64 = struct.Struct("<4sQ2H2L4Q")
_LOCATOR64 = struct.Struct("<4sLQL")
_UNIX, _VERSION, _VERSION64 = 3, 20, 45
_UTF8_NAME = 0x800
_FILE_MODE = 0o100644 << 16


class _Central(NamedTuple):
    """What the central directory says of one entry."""

    name: bytes
    flags: int
    method: int
    crc: int
    compressed: int
    size: int
    offset: int


def write_zip(target: Path, entries: Mapping[str, Path | Span]) -> None:
    """A reproducible zip of ``entries`` (name in the zip → file or span of one), written
    atomically.

    Written here rather than with :mod:`zipfile`, which copies every entry through this
    process and computes its CRC-32 again: a stored entry's bytes go from its file to the
    zip inside the kernel (``copy_file_range``), and a span's CRC comes from the worker
    that wrote it. The layout is zipfile's: local headers without data descriptors,
    sorted names (UTF-8 flagged when not ASCII), ZIP64 records where sizes, offsets or
    the number of entries need them.
    """
    tmp = target.with_name(f".{target.name}.part")
    blobs: dict[Path, int] = {}  # open for the whole zip: each holds many entries
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with contextlib.ExitStack() as stack:
            stack.callback(os.close, out)
            central: list[_Central] = []
            position = 0
            for name in sorted(entries):
                source = entries[name]
                with contextlib.ExitStack() as entry:
                    if isinstance(source, Span):
                        path, offset, size, crc = (source.path, source.offset, source.size,
                                                   source.crc)
                        fd = blobs.get(path)
                        if fd is None:
                            fd = blobs[path] = os.open(path, os.O_RDONLY)
                            stack.callback(os.close, fd)
                    else:  # a file of its own, open only while it is copied
                        path, offset, crc = source, 0, None
                        fd = os.open(path, os.O_RDONLY)
                        entry.callback(os.close, fd)
                        size = os.fstat(fd).st_size
                    if os.fstat(fd).st_size < offset + size:
                        raise OSError(f"{path}: ends before the entry {name}")
                    written = _write_entry(out, name, fd, offset, size, crc, path)
                central.append(written[0]._replace(offset=position))
                position += written[1]
            write_all(out, _central_directory(central, position))
            os.fchmod(out, 0o644)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_entry(out: int, name: str, fd: int, offset: int, size: int, crc: int | None,
                 path: Path) -> tuple[_Central, int]:
    """Append one entry (local header and data) to ``out``: its central directory record
    (offset still 0) and the bytes appended."""
    try:
        encoded, flags = name.encode("ascii"), 0
    except UnicodeEncodeError:
        encoded, flags = name.encode("utf-8"), _UTF8_NAME
    if name.endswith(_STORED_SUFFIXES) or "." not in name.rsplit("/", 1)[-1]:
        if crc is None:
            crc = _crc_of(fd, offset, size, name, path)
        header = _local_header(encoded, flags, 0, crc, size, size)
        write_all(out, header)
        _copy(fd, offset, size, out, name, path)
        return _Central(encoded, flags, 0, crc, size, size, 0), len(header) + size
    # A text file of the package: small, deflated in memory.
    data = b"".join(_chunks(fd, offset, size, name, path))
    packer = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    packed = packer.compress(data) + packer.flush()
    crc = zlib.crc32(data)
    header = _local_header(encoded, flags, 8, crc, len(packed), size)
    write_all(out, header + packed)
    return _Central(encoded, flags, 8, crc, len(packed), size, 0), len(header) + len(packed)


def _local_header(name: bytes, flags: int, method: int, crc: int, compressed: int,
                  size: int) -> bytes:
    extra = b""
    version = _VERSION
    if size > ZIP64_LIMIT or compressed > ZIP64_LIMIT:
        extra = struct.pack("<HHQQ", 1, 16, size, compressed)
        size = compressed = 0xFFFFFFFF
        version = _VERSION64
    return _LOCAL.pack(b"PK\x03\x04", version, 0, flags, method, _DOS_TIME, _DOS_DATE, crc,
                       compressed, size, len(name), len(extra)) + name + extra


def _central_directory(entries: list[_Central], start: int) -> bytes:
    """The central directory that begins at ``start``, and the end records after it."""
    parts = []
    for entry in entries:
        fields: list[int] = []
        size, compressed, offset = entry.size, entry.compressed, entry.offset
        if size > ZIP64_LIMIT or compressed > ZIP64_LIMIT:
            fields += [size, compressed]
            size = compressed = 0xFFFFFFFF
        if offset > ZIP64_LIMIT:
            fields.append(offset)
            offset = 0xFFFFFFFF
        extra = struct.pack(f"<HH{len(fields)}Q", 1, 8 * len(fields), *fields) if fields else b""
        version = _VERSION64 if fields else _VERSION
        parts.append(_CENTRAL.pack(
            b"PK\x01\x02", version, _UNIX, version, 0, entry.flags, entry.method, _DOS_TIME,
            _DOS_DATE, entry.crc, compressed, size, len(entry.name), len(extra), 0, 0, 0,
            _FILE_MODE, offset) + entry.name + extra)
    directory = b"".join(parts)
    count, end = len(entries), start + len(directory)
    tail = b""
    # 0xFFFF entries already: some readers take that count as "see the ZIP64 record".
    if count >= _ENTRIES_LIMIT or len(directory) > ZIP64_LIMIT or start > ZIP64_LIMIT:
        tail = _END64.pack(b"PK\x06\x06", _END64.size - 12, _VERSION64, _VERSION64, 0, 0,
                           count, count, len(directory), start)
        tail += _LOCATOR64.pack(b"PK\x06\x07", 0, end, 1)
    tail += _END.pack(b"PK\x05\x06", 0, 0, min(count, _ENTRIES_LIMIT),
                      min(count, _ENTRIES_LIMIT), min(len(directory), 0xFFFFFFFF),
                      min(start, 0xFFFFFFFF), 0)
    return directory + tail


def _chunks(fd: int, offset: int, size: int, name: str, path: Path) -> Iterator[bytes]:
    """``size`` bytes of ``fd`` from ``offset``, a chunk at a time (a single read may
    return less than asked); OSError naming the entry if the file ends first."""
    while size:
        chunk = os.pread(fd, min(size, _CHUNK), offset)
        if not chunk:
            raise OSError(f"{path}: ends before the entry {name}")
        yield chunk
        offset += len(chunk)
        size -= len(chunk)


def _crc_of(fd: int, offset: int, size: int, name: str, path: Path) -> int:
    crc = 0
    for chunk in _chunks(fd, offset, size, name, path):
        crc = zlib.crc32(chunk, crc)
    return crc


#: copy_file_range's errors that mean "not here" (another file system, an old kernel, a
#: sandbox that forbids it): the bytes then go through this process.
_NO_KERNEL_COPY = frozenset({errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP,
                             errno.EPERM, errno.ETXTBSY})


def _copy(source: int, offset: int, size: int, out: int, name: str, path: Path) -> None:
    """``size`` bytes of ``source`` from ``offset`` appended to ``out``: in the kernel where
    it can, through this process where it cannot (another file system, an old kernel)."""
    kernel = True
    while size:
        done = 0
        if kernel:
            try:
                done = os.copy_file_range(source, out, size, offset)
            except OSError as exc:
                if exc.errno not in _NO_KERNEL_COPY:
                    raise
            # 0 is also how some file systems say they cannot: the size was checked, so
            # the bytes are there; read them.
            kernel = done > 0
        if not done:
            chunk = os.pread(source, min(size, _CHUNK), offset)
            if not chunk:
                raise OSError(f"{path}: ends before the entry {name}")
            write_all(out, chunk)
            done = len(chunk)
        offset += done
        size -= done


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
