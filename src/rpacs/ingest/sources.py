"""Where import input comes from: files, folders (recursively) and zip files.

Sources are named, not read, here: a worker process reads each one itself, so that the bytes
of large files cross no process boundary. Zip members are never extracted to disk; a member
whose name would escape a folder (``../``, an absolute path) is refused by name.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import DicomInputError


@dataclass(frozen=True)
class Source:
    """One candidate input file: a plain file, or ``member`` of the zip file at ``path``."""

    path: str
    member: str | None = None

    @property
    def name(self) -> str:
        return f"{self.path}!{self.member}" if self.member is not None else self.path

    def read(self) -> bytes:
        try:
            if self.member is None:
                return Path(self.path).read_bytes()
            with zipfile.ZipFile(self.path) as archive:
                return archive.read(self.member)
        except PermissionError as exc:
            raise DicomInputError(self.name, "cannot be read (permission denied)") from exc
        except (OSError, zipfile.BadZipFile, KeyError) as exc:
            raise DicomInputError(self.name, f"cannot be read ({type(exc).__name__})") from exc


@dataclass(frozen=True)
class RefusedSource:
    """An input that is refused before reading, such as a zip member named ``../x``."""

    name: str
    reason: str


def _unsafe_member(name: str) -> bool:
    pure = PurePosixPath(name.replace("\\", "/"))
    return pure.is_absolute() or ".." in pure.parts or (len(name) > 1 and name[1] == ":")


def _zip_sources(path: Path) -> Iterator[Source | RefusedSource]:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (OSError, zipfile.BadZipFile) as exc:
        yield RefusedSource(str(path), "not a readable zip file: damaged, cut short or "
                                       f"not a zip at all ({type(exc).__name__})")
        return
    for info in sorted(members, key=lambda m: m.filename):
        if info.is_dir():
            continue
        if _unsafe_member(info.filename):
            yield RefusedSource(
                f"{path}!{info.filename}", "zip entry name points outside the archive; refused"
            )
            continue
        yield Source(str(path), info.filename)


def iter_sources(paths: Iterable[Path]) -> Iterator[Source | RefusedSource]:
    """Every candidate file under ``paths`` in a stable order: a folder's files sorted by
    name, then its subfolders' in the same way (as ``os.walk`` lists them top-down)."""
    for given in paths:
        path = Path(given)
        if path.is_dir():
            yield from _folder_sources(str(path))
        elif path.exists():
            yield from _file_sources(path)
        else:
            yield RefusedSource(str(path), "no such file or folder")


def _folder_sources(top: str) -> Iterator[Source | RefusedSource]:
    """The sources under the folder ``top``, from its directory entries: they say which
    entry is a file, a folder or a link without a stat of each file (an import is named
    before any work starts, so this is time every run waits). A folder's files come
    before its subfolders'; an unreadable folder is passed over, and a link to a folder
    is not followed, as ``os.walk`` does. Names are written as pathlib writes them
    (``a/1.dcm`` under ``.``, not ``./a/1.dcm``)."""
    pending = [top]  # folders still to list, the next one last
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError:
            continue
        prefix = "" if folder == "." else folder if folder.endswith("/") else f"{folder}/"
        subfolders = []
        for entry in entries:
            name = prefix + entry.name
            try:
                is_folder = entry.is_dir()
            except OSError:
                is_folder = False
            if not is_folder:
                yield from _entry_sources(entry, name)
            elif not entry.is_symlink():
                subfolders.append(name)
        pending.extend(reversed(subfolders))


def _entry_sources(entry: os.DirEntry[str], name: str) -> Iterator[Source | RefusedSource]:
    if entry.name.lower().endswith(".zip") or entry.is_symlink():
        yield from _file_sources(Path(name))  # the rarer cases, checked on the path
    elif entry.is_file():
        yield Source(name)


def _file_sources(path: Path) -> Iterator[Source | RefusedSource]:
    if path.is_symlink() and not path.exists():
        yield RefusedSource(str(path), "broken symbolic link")
    elif path.suffix.lower() == ".zip" and path.is_file():
        # Opened as a zip whatever it holds: a zip cut short by a copy is refused as one,
        # not skipped as "not DICOM" with an import that seems to have gone well.
        yield from _zip_sources(path)
    elif path.is_file():
        yield Source(str(path))
