"""Accounts: users, API tokens, project roles and the one authorization decision."""

from .content import Principal, ProjectAccess, UserSummary
from .enum import ROLE_PERMISSIONS, Permission, Role, allows
from .service import (
    add_member,
    add_user,
    authenticate,
    authorize,
    create_token,
    end_sessions,
    list_users,
    principal_for_token,
    principal_for_user,
    project_members,
    remove_member,
    set_password,
    unlock_user,
    visible_projects,
)

__all__ = [
    "ROLE_PERMISSIONS",
    "Permission",
    "Principal",
    "ProjectAccess",
    "Role",
    "UserSummary",
    "add_member",
    "add_user",
    "allows",
    "authenticate",
    "authorize",
    "create_token",
    "end_sessions",
    "list_users",
    "principal_for_token",
    "principal_for_user",
    "project_members",
    "remove_member",
    "set_password",
    "unlock_user",
    "visible_projects",
]
