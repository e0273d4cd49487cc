"""Settings: the one typed object that knows the environment.

Read from ``RPACS_*`` environment variables and, if present, a TOML config file
(``$RPACS_HOME/rpacs.toml`` or the file named by ``RPACS_CONFIG``). Nothing else in rpacs
reads the environment; everything that needs a setting is handed a :class:`Settings`.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import InvalidInputError


def _default_home() -> Path:
    return Path.home() / ".rpacs"


class Settings(BaseSettings):
    """Where rpacs keeps its data and how it reaches its database."""

    model_config = SettingsConfigDict(env_prefix="RPACS_", extra="ignore", frozen=True)

    home: Path = Field(default_factory=_default_home, description="Data folder.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default is a SQLite file inside the home folder.",
    )
    config: Path | None = Field(default=None, description="Optional TOML config file.")
    workers: int = Field(default=0, ge=0, description="Worker processes; 0 means one per core.")
    web_session_hours: float = Field(
        default=8.0, gt=0, description="How long a web login lasts without logging in again."
    )
    web_secure_cookie: bool = Field(
        default=False,
        description="Send the session cookie over HTTPS only (set it behind a TLS proxy).",
    )
    review_upload_max_mb: int = Field(
        default=1024, gt=0,
        description="Largest zip (and its unpacked content) the 'Review a zip' page accepts.",
    )
    login_lock_failures: int = Field(
        default=10, ge=3,
        description="Failed logins in a row that lock an account until an admin unlocks it.",
    )
    ae_title: str = Field(
        default="RPACS", min_length=1, max_length=16,
        description="AE title of the DICOM services (``rpacs scp --ae-title`` overrides).",
    )
    dicom_port: int = Field(default=11112, ge=1, le=65535, description="DICOM listening port.")
    study_timeout: float = Field(
        default=16.0, gt=0,
        description="Seconds without a new instance after which a received study is complete.",
    )
    quarantine_days: float = Field(
        default=7.0, gt=0,
        description="Days an unassigned study stays in the quarantine before it is purged.",
    )
    coupling_days: float = Field(
        default=14.0, gt=0, description="Days a coupling-list entry stays valid after upload.",
    )

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Environment first, then the config file for what the environment left unset."""
        env_settings = cls(**overrides)
        config_path = env_settings.config or (env_settings.home / "rpacs.toml")
        if not config_path.is_file():
            return env_settings
        try:
            file_values = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidInputError(f"config file {config_path}: {exc}") from exc
        unknown = set(file_values) - set(cls.model_fields)
        if unknown:
            raise InvalidInputError(
                f"config file {config_path}: unknown setting(s) {', '.join(sorted(unknown))}"
            )
        explicit = {name for name in cls.model_fields if f"RPACS_{name.upper()}" in os.environ}
        merged = {k: v for k, v in file_values.items() if k not in explicit}
        merged.update({k: getattr(env_settings, k) for k in explicit})
        merged.update(overrides)
        return cls(**merged)

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
        for directory in (self.home, self.store_dir, self.tmp_dir, self.log_dir):
            directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)
