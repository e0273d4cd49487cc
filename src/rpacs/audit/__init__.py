"""The audit log: who logged in, changed members, reviewed, exported or downloaded what."""

from .service import AuditQuery, audit_events, record_event

__all__ = ["AuditQuery", "audit_events", "record_event"]
