"""Settings: the one typed object that knows the environment.

Read from ``RPACS_*`` environment variables and, if present, a TOML config file
(``$RPACS_HOME/rpacs.toml`` or the file named by ``RPACS_CONFIG``). Nothing else in rpacs
reads the environment; everything that needs a setting is handed a :class:`Settings`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import secrets
import tomllib
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .errors import InvalidInputError


def _default_home() -> Path:
    return Path.home() / ".rpacs"


def _setting(kind: type, description: str, *, default: Any = None,
             default_factory: Callable[[], Any] | None = None, optional: bool = False,
             low: float | None = None, above: bool = False, high: float | None = None,
             length: tuple[int, int] | None = None) -> Any:
    """A field of :class:`Settings`: its type, meaning and bounds, checked on every load.

    ``low`` is inclusive unless ``above``; ``length`` bounds a text's length.
    """
    metadata = {"kind": kind, "description": description, "optional": optional, "low": low,
                "above": above, "high": high, "length": length}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _parse(kind: type, optional: bool, value: Any) -> Any:
    """``value`` (text from the environment, or a TOML value) as ``kind``; ValueError with
    the reason when it cannot be one."""
    if value is None or (optional and value == ""):
        if optional:
            return None
        raise ValueError("a value is required")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError("must be true or false")
    if kind is int or kind is float:
        # A float setting takes a whole number too (TOML's 4 for 4.0); an int one, no float.
        numbers = (int,) if kind is int else (int, float)
        number: int | float | None = None
        if isinstance(value, numbers) and not isinstance(value, bool):
            with suppress(OverflowError):
                number = kind(value)
        elif isinstance(value, str):
            with suppress(ValueError, OverflowError):
                number = kind(value.strip())
        # No NaN or infinity: a timeout or a number of days must compare and add up.
        if number is None or not math.isfinite(number):
            raise ValueError("must be a whole number" if kind is int else "must be a number")
        return number
    if not isinstance(value, str | Path):
        raise ValueError("must be text")
    return Path(value).expanduser() if kind is Path else str(value)


@dataclass(frozen=True)
class Settings:
    """Where rpacs keeps its data and how it reaches its database.

    A plain, frozen data class (pydantic's settings cost every command a fifth of a second
    to import): ``Settings(home=...)`` takes values as given, :meth:`load` reads them from
    the environment and the config file. Both check every value against its bounds.
    """

    home: Path = _setting(Path, "Data folder.", default_factory=_default_home)
    database_url: str | None = _setting(
        str, "SQLAlchemy URL; default is a SQLite file inside the home folder.", optional=True)
    config: Path | None = _setting(Path, "Optional TOML config file.", optional=True)
    workers: int = _setting(int, "Worker processes; 0 means one per core.", default=0, low=0)
    web_session_hours: float = _setting(
        float, "How long a web login lasts without logging in again.", default=8.0, low=0,
        above=True)
    web_secure_cookie: bool = _setting(
        bool, "Send the session cookie over HTTPS only (set it behind a TLS proxy).",
        default=False)
    review_upload_max_mb: int = _setting(
        int, "Largest zip (and its unpacked content) the 'Review a zip' page accepts.",
        default=1024, low=0, above=True)
    login_lock_failures: int = _setting(
        int, "Failed logins in a row that lock an account until an admin unlocks it.",
        default=10, low=3)
    ae_title: str = _setting(
        str, "AE title of the DICOM services (``rpacs scp --ae-title`` overrides).",
        default="RPACS", length=(1, 16))
    dicom_port: int = _setting(int, "DICOM listening port.", default=11112, low=1, high=65535)
    study_timeout: float = _setting(
        float, "Seconds without a new instance after which a received study is complete.",
        default=16.0, low=0, above=True)
    quarantine_days: float = _setting(
        float, "Days an unassigned study stays in the quarantine before it is purged.",
        default=7.0, low=0, above=True)
    coupling_days: float = _setting(
        float, "Days a coupling-list entry stays valid after upload.", default=14.0, low=0,
        above=True)

    def __post_init__(self) -> None:
        problems = []
        for spec in dataclasses.fields(self):
            try:
                value = _parse(spec.metadata["kind"], spec.metadata["optional"],
                               getattr(self, spec.name))
                _check(spec.metadata, value)
            except ValueError as exc:
                problems.append(f"setting RPACS_{spec.name.upper()}: {exc}")
                continue
            object.__setattr__(self, spec.name, value)  # "8" given for a float: 8.0
        if problems:
            raise InvalidInputError(problems)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The settings' names; each is read from ``RPACS_<NAME>`` or the config file."""
        return tuple(spec.name for spec in dataclasses.fields(cls))

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Environment first, then the config file for what the environment left unset;
        ``overrides`` win over both. Every problem is reported at once, naming the
        setting (never its value, which could be a password in a database URL)."""
        environ = os.environ if environ is None else environ
        given = {name: environ[f"RPACS_{name.upper()}"] for name in cls.names()
                 if f"RPACS_{name.upper()}" in environ}
        env_settings = cls(**{**given, **overrides})
        config_path = env_settings.config or (env_settings.home / "rpacs.toml")
        if not config_path.is_file():
            return env_settings
        try:
            file_values = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidInputError(f"config file {config_path}: {exc}") from exc
        unknown = set(file_values) - set(cls.names())
        if unknown:
            raise InvalidInputError(
                f"config file {config_path}: unknown setting(s) {', '.join(sorted(unknown))}"
            )
        return cls(**{**file_values, **given, **overrides})

    def to_json(self) -> str:
        """Every setting as JSON, for :meth:`from_json` in another process (an export
        job gets its settings on stdin, never on a command line)."""
        return json.dumps({name: str(value) if isinstance(value, Path) else value
                           for name, value in dataclasses.asdict(self).items()})

    @classmethod
    def from_json(cls, text: str) -> Settings:
        return cls(**json.loads(text))

    @property
    def home_is_default(self) -> bool:
        """Whether the home is the default one (``~/.rpacs``): nothing chose another."""
        return self.home == _default_home()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'rpacs.sqlite3'}"

    @property
    def store_dir(self) -> Path:
        """De-identified project files: ``store/<ACRONYM>/<study>/<series>/<sop>.dcm``."""
        return self.home / "store"

    @property
    def tmp_dir(self) -> Path:
        """Temporary files; on the same file system as the store so renames are atomic."""
        return self.home / "tmp"

    @property
    def quarantine_dir(self) -> Path:
        """Received originals (identifying by design): readable only by the service's user."""
        return self.home / "quarantine"

    @property
    def exports_dir(self) -> Path:
        """Exports started from the web app: ``exports/<job id>/`` holds the package and,
        beside it, its risk report and coupling list (readable only by the service)."""
        return self.home / "exports"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def worker_count(self) -> int:
        return self.workers or (os.cpu_count() or 1)

    @cached_property
    def installation_secret(self) -> bytes:
        """The key of the keyed hash of original patient IDs (never the IDs themselves).

        Created once per installation with 256 random bits, readable only by its owner.
        """
        return self._key_file("installation.key")

    @cached_property
    def session_secret(self) -> bytes:
        """The key that signs web session cookies; its own file, so it can be rotated alone.

        Replacing the file logs every web user out and touches nothing else.
        """
        return self._key_file("web-session.key")

    @property
    def thumbnail_dir(self) -> Path:
        """Rendered series thumbnails: a cache, safe to delete."""
        return self.home / "cache" / "thumbnails"

    def _key_file(self, name: str) -> bytes:
        """A 256-bit key kept in ``home/name`` (mode 0600), made on first use."""
        path = self.home / name
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            # A name of this process's own: two first starts at once must not share it.
            tmp = path.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)  # never replace a key that another process just made
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        key = path.read_bytes()
        if len(key) != 32:
            raise InvalidInputError(f"{path}: a key file must hold exactly 32 bytes")
        return key

    def ensure_dirs(self) -> None:
        """Make the home's folders; InvalidInputError naming RPACS_HOME when it cannot be
        one (a file, a place without write permission)."""
        try:
            for directory in (self.home, self.store_dir, self.tmp_dir, self.log_dir):
                directory.mkdir(parents=True, exist_ok=True)
            os.chmod(self.home, 0o700)
        except (FileExistsError, NotADirectoryError) as exc:
            blocking = next((p for p in (self.home, *self.home.parents)
                             if p.exists() and not p.is_dir()), exc.filename)
            raise InvalidInputError(f"RPACS_HOME: {self.home} cannot be the data folder: "
                                    f"{blocking} is a file, not a folder") from exc
        except OSError as exc:
            raise InvalidInputError(f"RPACS_HOME: {self.home} cannot be the data folder "
                                    f"({exc.strerror})") from exc


def _check(bounds: Mapping[str, Any], value: Any) -> None:
    """ValueError when ``value`` lies outside the bounds :func:`_setting` gave it."""
    if value is None:
        return
    low, high, length = bounds["low"], bounds["high"], bounds["length"]
    if low is not None and (value <= low if bounds["above"] else value < low):
        raise ValueError(f"must be {'greater than' if bounds['above'] else 'at least'} {low:g}")
    if high is not None and value > high:
        raise ValueError(f"must be at most {high:g}")
    if length is not None and not length[0] <= len(value) <= length[1]:
        raise ValueError(f"must be {length[0]} to {length[1]} characters long")
