"""The index database: SQLAlchemy models, engine set-up and automatic migrations."""

from .engine import Database, upsert
from .models import (
    ApiToken,
    AuditEvent,
    Base,
    Instance,
    Membership,
    Participant,
    Project,
    Series,
    Study,
    TagCheck,
    TagInventory,
    TagValue,
    User,
)

__all__ = [
    "ApiToken",
    "AuditEvent",
    "Base",
    "Database",
    "Instance",
    "Membership",
    "Participant",
    "Project",
    "Series",
    "Study",
    "TagCheck",
    "TagInventory",
    "TagValue",
    "User",
    "upsert",
]
