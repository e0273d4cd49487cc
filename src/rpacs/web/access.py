"""Who is calling and what they may do: every route's authorization, in one place.

A route states what it does to a project with one dependency,
``access: ProjectAccess = Depends(require(Permission.REVIEW))``; this module finds the
principal (an API token or the login session), asks :func:`rpacs.accounts.authorize`, and
checks the CSRF token of state-changing requests made with a session cookie.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from ..accounts import (
    Permission,
    Principal,
    ProjectAccess,
    authorize,
    principal_for_token,
    principal_for_user,
    visible_projects,
)
from ..errors import AuthenticationError, NotFoundError, PermissionDeniedError
from ..installation import Installation

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def installation(request: Request) -> Installation:
    return request.app.state.installation


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use (forms carry it in a hidden field)."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def start_session(request: Request, principal: Principal) -> None:
    """A new session for a user who just logged in: nothing of the old one survives."""
    request.session.clear()
    request.session.update({"user": principal.user_id, "since": time.time(),
                            "csrf": secrets.token_urlsafe(32)})


async def _check_csrf(request: Request) -> None:
    expected = request.session.get("csrf", "")
    given = request.headers.get(CSRF_HEADER, "")
    if not given and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        given = str((await request.form()).get(CSRF_FIELD, ""))
    if not expected or not secrets.compare_digest(expected, given):
        raise PermissionDeniedError(
            "the form has expired or did not come from this site: reload the page and "
            "try again")


async def current_principal(request: Request) -> Principal:
    """The caller: by ``Authorization: Bearer TOKEN``, else by the login session.

    State-changing requests made with the session cookie must carry the session's CSRF
    token (form field or ``X-CSRF-Token`` header); token callers need none, as no browser
    sends their header by itself.
    """
    inst = installation(request)
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("use the header 'Authorization: Bearer TOKEN' "
                                      "(create a token with: rpacs token create NAME)")
        principal = await run_in_threadpool(principal_for_token, inst, token.strip())
        request.state.principal = principal
        return principal
    user_id = request.session.get("user")
    if not isinstance(user_id, int):
        raise AuthenticationError("log in first (or send an API token)")
    try:
        principal = await run_in_threadpool(principal_for_user, inst, user_id,
                                            float(request.session.get("since", 0)))
    except AuthenticationError:
        request.session.clear()
        raise
    if request.method not in SAFE_METHODS:
        await _check_csrf(request)
    request.state.principal = principal
    return principal


async def check_login_form(request: Request) -> None:
    """The login form is checked for CSRF too (a forged login is an attack of its own)."""
    await _check_csrf(request)


def require(permission: Permission) -> Callable[..., Coroutine[Any, Any, ProjectAccess]]:
    """The dependency of a route that does ``permission`` to the project in its path."""

    async def dependency(acronym: str, request: Request,
                         principal: Principal = Depends(current_principal)) -> ProjectAccess:
        access = await run_in_threadpool(authorize, installation(request), principal,
                                         acronym, permission)
        request.state.access = access
        return access

    dependency.__name__ = f"require_{permission.value}"
    return dependency


async def require_admin(principal: Principal = Depends(current_principal)) -> Principal:
    """Routes over every project at once (the whole audit log) are for admins only."""
    if not principal.is_admin:
        raise PermissionDeniedError("only an administrator may see this")
    return principal


def require_export(permission: Permission) -> Callable[..., Coroutine[Any, Any, ProjectAccess]]:
    """The dependency of a route about one export job: ``permission`` in the job's project.

    A job of a project the caller is not in answers like a job that does not exist.
    """

    async def dependency(export_id: int, request: Request,
                         principal: Principal = Depends(current_principal)) -> ProjectAccess:
        from ..export import job_project

        inst = installation(request)
        try:
            acronym = await run_in_threadpool(job_project, inst, export_id)
            access = await run_in_threadpool(authorize, inst, principal, acronym, permission)
        except NotFoundError:
            raise NotFoundError(f"no export {export_id}") from None
        request.state.access = access
        return access

    dependency.__name__ = f"require_export_{permission.value}"
    return dependency


def assignable_projects(inst: Installation, principal: Principal) -> list[ProjectAccess]:
    """The projects into which ``principal`` may assign received studies."""
    return [a for a in visible_projects(inst, principal) if a.allows(Permission.ASSIGN)]


async def require_assigner(request: Request,
                           principal: Principal = Depends(current_principal)
                           ) -> list[ProjectAccess]:
    """The quarantine is for those who may assign into at least one project (admins: all).

    It holds studies of no project yet, so it is not hidden as a project would be: a user
    without the role gets 403, not 404.
    """
    projects = await run_in_threadpool(assignable_projects, installation(request), principal)
    if not projects:
        raise PermissionDeniedError("only a project's data managers and owners may assign "
                                    "received studies")
    return projects


def assign_access(projects: list[ProjectAccess], acronym: str) -> ProjectAccess:
    """The caller's access to the project they chose; one they cannot assign into does not
    exist for them (as everywhere, 404, whether it exists or not)."""
    for access in projects:
        if access.project.acronym.lower() == (acronym or "").lower():
            return access
    raise NotFoundError(f"no project '{acronym[:64]}' you may assign to")
