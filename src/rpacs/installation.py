"""An open rpacs installation: its settings and its (migrated) index database.

Every service takes an :class:`Installation` so that the command line, the web app and the
DICOM services share one way of finding data, and tests can open one on a temporary folder.
"""

from __future__ import annotations

from dataclasses import dataclass

from .db import Database
from .settings import Settings


@dataclass
class Installation:
    settings: Settings
    db: Database

    @classmethod
    def open(cls, settings: Settings | None = None) -> Installation:
        """Create the home folders if needed and bring the index to the current schema."""
        settings = settings or Settings.load()
        settings.ensure_dirs()
        db = Database(settings.resolved_database_url)
        db.migrate()
        return cls(settings=settings, db=db)

    def close(self) -> None:
        self.db.dispose()


__all__ = ["Installation"]
