"""Who is calling, and what they may do in one project."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..db import Project
from .enum import Permission, Role, allows


@dataclass(frozen=True)
class Principal:
    """An authenticated user, by login session or API token."""

    user_id: int
    name: str
    is_admin: bool


@dataclass(frozen=True)
class ProjectAccess:
    """A principal's standing in a project it may see: the project and its role there.

    Admins who are not members have ``role`` None and may do everything all the same.
    """

    principal: Principal
    project: Project
    role: Role | None

    def allows(self, permission: Permission) -> bool:
        return allows(self.role, permission, is_admin=self.principal.is_admin)


@dataclass(frozen=True)
class UserSummary:
    """What ``rpacs user list`` and the members page show of a user (never the hash)."""

    name: str
    is_admin: bool
    locked: bool
    failed_logins: int
    created_at: dt.datetime | None
    projects: dict[str, str]
