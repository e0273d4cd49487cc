"""The index database: SQLAlchemy models, engine set-up and automatic migrations."""

from .engine import Database, upsert
from .models import (
    AuditEvent,
    Base,
    ExportId,
    ExportRun,
    Instance,
    Participant,
    Project,
    Series,
    Study,
    TagInventory,
    TagValue,
)

__all__ = [
    "AuditEvent",
    "Base",
    "Database",
    "ExportId",
    "ExportRun",
    "Instance",
    "Participant",
    "Project",
    "Series",
    "Study",
    "TagInventory",
    "TagValue",
    "upsert",
]
