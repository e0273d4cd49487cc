"""The index database: SQLAlchemy models, engine set-up and automatic migrations."""

from .engine import Database, upsert
from .models import (
    AuditEvent,
    Base,
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
    "Instance",
    "Participant",
    "Project",
    "Series",
    "Study",
    "TagInventory",
    "TagValue",
    "upsert",
]
