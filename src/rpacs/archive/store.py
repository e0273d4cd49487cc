"""The file store: de-identified instances, one file each, written atomically.

Layout: ``<root>/<ACRONYM>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``,
all UIDs being the project's de-identified ones, so a path says nothing about a person.
A file is first written in full without its final name — on Linux an unnamed ``O_TMPFILE``
in the target folder, elsewhere a temporary name in ``tmp_dir`` (same file system) — and then
*linked* into place: unlike a rename, a link fails when the target exists, so two writers of
the same instance can never overwrite each other and a differing second version is detected
instead of silently replacing the first.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import StorageError

_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
_O_PATH = getattr(os, "O_PATH", os.O_RDONLY)
#: Folders this process has made already (each store folder is made once, not per file).
_MADE_DIRS: set[str] = set()
_COUNTER = itertools.count()
#: Store roots where an unnamed file could not be linked into place (no /proc, a file
#: system without O_TMPFILE): this process writes named temporary files there from then on, instead
#: of paying for a wasted unnamed write on every file.
_NO_UNNAMED: set[Path] = set()


class PutOutcome(enum.Enum):
    CREATED = "created"
    IDENTICAL = "identical"  # the same bytes were already there (a re-import)
    CONFLICT = "conflict"  # different bytes are stored under this name


@dataclass(frozen=True)
class FileStore:
    root: Path
    tmp_dir: Path

    @staticmethod
    def relative_path(acronym: str, study_uid: str, series_uid: str, sop_uid: str) -> str:
        return f"{acronym}/{study_uid}/{series_uid}/{sop_uid}.dcm"

    def path_of(self, relative: str) -> Path:
        return self.root / relative

    def put(self, relative: str, data: bytes) -> PutOutcome:
        """Store ``data`` under ``relative`` unless it is there already (then compare)."""
        # Plain strings and os calls: this runs once per file of every import.
        target = os.path.join(self.root, relative)
        if os.path.exists(target):
            return self._compare(Path(target), data)
        folder = os.path.dirname(target)
        if folder not in _MADE_DIRS:
            os.makedirs(folder, exist_ok=True)
            _MADE_DIRS.add(folder)
        if _O_TMPFILE and self.root not in _NO_UNNAMED:
            outcome = self._put_unnamed(Path(target), data)
            if outcome is not None:
                return outcome
            _NO_UNNAMED.add(self.root)
        fd, tmp_name = self._temporary()
        try:
            try:
                write_all(fd, data)
                os.fchmod(fd, 0o640)
            finally:
                os.close(fd)
            try:
                os.link(tmp_name, target)
            except FileExistsError:
                return self._compare(Path(target), data)
            except OSError as exc:
                if exc.errno not in (1, 18, 38, 95):  # EPERM, EXDEV, ENOSYS, EOPNOTSUPP
                    raise
                # File systems without hard links: fall back to an exclusive create.
                return self._put_exclusive(Path(target), data)
        except OSError as exc:
            raise StorageError(f"cannot write {relative} in the store: {exc.strerror}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
        return PutOutcome.CREATED

    def _temporary(self) -> tuple[int, str]:
        """A new temporary file in ``tmp_dir``: (descriptor, name), created exclusively.

        Named by process and counter (``put-*.part``, as the stale-file sweep expects):
        cheaper than random names; a leftover of an earlier process with the same id is
        stepped over.
        """
        folder = str(self.tmp_dir)
        if folder not in _MADE_DIRS:
            os.makedirs(folder, exist_ok=True)
            _MADE_DIRS.add(folder)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        while True:
            name = f"{folder}/put-{os.getpid()}-{next(_COUNTER)}.part"
            try:
                return os.open(name, flags, 0o600), name
            except FileExistsError:
                continue
            except FileNotFoundError:  # the folder went away (a finished run removes it)
                os.makedirs(folder, exist_ok=True)

    def _put_unnamed(self, target: Path, data: bytes) -> PutOutcome | None:
        """Linux: write an unnamed file in the target's folder and link it into place.

        The file has no name until it is complete, so no reader and no crash can ever see
        it half-written, and nothing is left to clean up. None when the file system cannot.
        """
        created = link_unnamed(target, data, 0o640)
        if created is None:
            return None
        return PutOutcome.CREATED if created else self._compare(target, data)

    def _put_exclusive(self, target: Path, data: bytes) -> PutOutcome:
        partial = target.with_name(target.name + ".part")
        try:
            with open(partial, "xb") as fh:
                fh.write(data)
        except FileExistsError:
            return self._compare(target, data) if target.exists() else PutOutcome.CONFLICT
        if target.exists():
            partial.unlink()
            return self._compare(target, data)
        os.replace(partial, target)
        return PutOutcome.CREATED

    @staticmethod
    def _compare(target: Path, data: bytes) -> PutOutcome:
        return PutOutcome.IDENTICAL if target.read_bytes() == data else PutOutcome.CONFLICT

    def remove(self, relative: str) -> None:
        (self.root / relative).unlink(missing_ok=True)


def write_all(fd: int, data: bytes) -> None:
    """All of ``data`` to the descriptor ``fd``."""
    write_runs(fd, (data,))


#: Runs handed to one writev(2) at most (Linux's IOV_MAX), and bytes: macOS refuses a
#: call of more than 2 GiB, where Linux writes part of it.
_RUNS_PER_CALL = 1024
_BYTES_PER_CALL = 1 << 30


def write_runs(fd: int, runs: Sequence[bytes | memoryview]) -> None:
    """All of ``runs``, one after another, to the descriptor ``fd``: the bytes of a file
    that was never joined in memory, in one writev(2) as a rule. Like write(2), writev
    may write less than given; the rest follows."""
    pending = [run for run in runs if len(run)]
    i = 0
    while i < len(pending):
        j, size = i, 0
        while (j < len(pending) and j - i < _RUNS_PER_CALL
               and size + len(pending[j]) <= _BYTES_PER_CALL):
            size += len(pending[j])
            j += 1
        # A run larger than a call may take goes a part at a time.
        batch = pending[i:j] if j > i else [memoryview(pending[i])[:_BYTES_PER_CALL]]
        written = os.writev(fd, batch)
        while i < len(pending) and written >= len(pending[i]):
            written -= len(pending[i])
            i += 1
        if written:
            pending[i] = memoryview(pending[i])[written:]


def link_unnamed(target: Path, data: bytes, mode: int) -> bool | None:
    """Write ``data`` as a new file ``target`` that has no name until it is complete.

    Linux only: an ``O_TMPFILE`` in the target's folder, linked into place with
    ``linkat(AT_SYMLINK_FOLLOW)`` of its ``/proc/self/fd`` link (os.link does that only
    when given a folder descriptor; plain ``link(2)`` would link the /proc symlink itself
    and fail with EXDEV). True when written, False when ``target`` exists already, None
    when this file system or sandbox cannot (the caller writes a named temporary file).
    """
    if not _O_TMPFILE:
        return None
    try:
        folder = os.open(target.parent, _O_PATH | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        try:
            fd = os.open(".", _O_TMPFILE | os.O_WRONLY, mode, dir_fd=folder)
        except OSError:
            return None
        try:
            write_all(fd, data)
            os.fchmod(fd, mode)  # exactly ``mode``, whatever the process' umask
            try:
                os.link(f"/proc/self/fd/{fd}", target.name, dst_dir_fd=folder,
                        follow_symlinks=True)
            except FileExistsError:
                return False
            except OSError:
                return None
        finally:
            os.close(fd)
    finally:
        os.close(folder)
    return True
