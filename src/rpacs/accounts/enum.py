"""Roles in a project and what each may do: the one table every route is checked against."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A user's role in one project."""

    OWNER = "owner"
    DATA_MANAGER = "data-manager"
    MEMBER = "member"


class Permission(StrEnum):
    """Something a route does to a project; each route names exactly one."""

    VIEW = "view"  # the project, its overview, series and thumbnails
    REVIEW = "review"  # the tag inventory, its values, marking tags checked
    EXPORT = "export"  # start an export, see its dry run and progress
    DOWNLOAD = "download"  # fetch an export's package
    MEMBERS = "members"  # see and change who is in the project
    SETTINGS = "settings"  # change the project's settings
    AUDIT = "audit"  # read the project's audit log
    ASSIGN = "assign"  # assign received studies to the project, upload coupling lists


#: What each role may do in its project. Admins may do everything in every project.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    Role.DATA_MANAGER: frozenset({Permission.VIEW, Permission.REVIEW, Permission.EXPORT,
                                  Permission.DOWNLOAD, Permission.ASSIGN}),
    Role.MEMBER: frozenset({Permission.VIEW, Permission.REVIEW}),
}


def allows(role: Role | None, permission: Permission, *, is_admin: bool = False) -> bool:
    """Whether an admin flag or a role in the project grants ``permission``."""
    return is_admin or (role is not None and permission in ROLE_PERMISSIONS[role])
