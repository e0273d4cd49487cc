"""The quarantine's files: received originals, as sent, readable only by the service's user.

Layout: ``<home>/quarantine/<study folder>/<instance file>.dcm``, both names keyed hashes
(HMAC with the installation secret) of the StudyInstanceUID and SOPInstanceUID, so that a
path, a directory listing or a log line says nothing about a patient. Folders are 0700,
files 0600. A file is written unnamed (Linux ``O_TMPFILE``) or under a temporary name and
then linked into place: a killed service never leaves a partial file under a final name.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import StorageError

_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
#: Whether linking an unnamed file into place works here (not on every file system).
_UNNAMED = {"works": bool(_O_TMPFILE)}
#: Name of the folder of files being written where O_TMPFILE is not available.
_PARTIAL = ".partial"
_O_PATH = getattr(os, "O_PATH", os.O_RDONLY)


@dataclass(frozen=True)
class QuarantineStore:
    root: Path
    secret: bytes

    def _name(self, kind: str, uid: str) -> str:
        digest = hmac.new(self.secret, f"{kind}:{uid}".encode(), hashlib.sha256)
        return digest.hexdigest()[:40]

    def folder_name(self, study_uid: str) -> str:
        return self._name("study", study_uid)

    def file_name(self, sop_uid: str) -> str:
        return self._name("instance", sop_uid) + ".dcm"

    def path_of(self, folder: str, file: str) -> Path:
        return self.root / folder / file

    def _make_folder(self, folder: Path) -> None:
        if folder.is_dir():
            return
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
        # mkdir's mode is reduced by the umask, never widened: set it explicitly.
        os.chmod(self.root, 0o700)
        os.chmod(folder, 0o700)

    def put(self, folder: str, file: str, data: bytes) -> bool:
        """Write ``data`` as ``folder/file``; False when that file was already there.

        Raises StorageError (no partial file left) when the write fails.
        """
        directory = self.root / folder
        target = directory / file
        try:
            self._make_folder(directory)
            if target.exists():
                return False
            if _UNNAMED["works"]:
                created = self._put_unnamed(directory, target, data)
                if created is not None:
                    return created
            return self._put_named(directory, target, data)
        except OSError as exc:
            # The message names the quarantine folder, never a value from the data.
            raise StorageError(f"cannot write to the quarantine: {exc.strerror}") from exc

    @staticmethod
    def _put_unnamed(directory: Path, target: Path, data: bytes) -> bool | None:
        try:
            folder = os.open(directory, _O_PATH | os.O_DIRECTORY)
        except OSError:
            return None
        try:
            try:
                fd = os.open(".", _O_TMPFILE | os.O_WRONLY, 0o600, dir_fd=folder)
            except OSError:
                return None
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                try:
                    # linkat(AT_SYMLINK_FOLLOW) of the /proc link. Without a directory
                    # descriptor os.link calls plain link(2), which links the /proc
                    # symlink itself and fails (EXDEV): the unnamed path never worked.
                    os.link(f"/proc/self/fd/{fd}", target.name, dst_dir_fd=folder,
                            follow_symlinks=True)
                except FileExistsError:
                    return False
                except OSError:
                    _UNNAMED["works"] = False  # e.g. no /proc: use named files
                    return None
            finally:
                os.close(fd)
        finally:
            os.close(folder)
        return True

    @staticmethod
    def _put_named(directory: Path, target: Path, data: bytes) -> bool:
        partial = directory / _PARTIAL
        partial.mkdir(mode=0o700, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=partial, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            try:
                os.link(name, target)
            except FileExistsError:
                return False
        finally:
            Path(name).unlink(missing_ok=True)
        return True

    def read(self, folder: str, file: str) -> bytes:
        return self.path_of(folder, file).read_bytes()

    def remove(self, folder: str, file: str) -> None:
        self.path_of(folder, file).unlink(missing_ok=True)

    def remove_folder(self, folder: str) -> int:
        """Delete a study's folder; the number of instance files it held."""
        directory = self.root / folder
        if not directory.is_dir():
            return 0
        count = sum(1 for p in directory.glob("*.dcm"))
        shutil.rmtree(directory)
        return count

    def folders(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())
