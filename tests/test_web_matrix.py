"""Every route × every role: who gets in, who gets 403, and for whom a project does not exist.

The table below names each route's permission; the expected answer for every role follows
from the role table in rpacs.accounts. A route missing from the table fails
``test_every_route_is_in_the_matrix``, so a new route (the export routes, say) joins the
matrix with one line.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import APIRoute

from rpacs.accounts import ROLE_PERMISSIONS, Permission, Role, add_member, remove_member
from rpacs.errors import NotFoundError
from rpacs.export import save_spec, stored_spec
from rpacs.projects import get_project
from rpacs.web import api, pages

from .web_world import (
    PEOPLE,
    World,
    failed_export,
    finished_export,
    quarantined_study,
    zip_of_study,
)

#: Who may call a route that names no project.
PUBLIC, LOGGED_IN, ADMIN = "public", "logged-in", "admin"
#: Routes of the quarantine: whoever may assign into some project (data managers, owners).
ASSIGNER = "assigner"
ROLES = ["admin", "owner", "data-manager", "member", "non-member", "anonymous"]
USER_OF = {"admin": "root", "owner": "olivia", "data-manager": "dana", "member": "mike",
           "non-member": "nora"}


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as declared; {acronym} and {series_id} are filled in
    access: Permission | str
    #: JSON body (API) or form fields (pages); a callable is given the world.
    body: Any = None
    #: Run before each call, e.g. to put back what the previous call removed.
    setup: Callable[[World], None] | None = None
    #: The form field of an uploaded file (pages).
    upload_field: str = "package"

    @property
    def api(self) -> bool:
        return self.path.startswith("/api/")


def _zed_in(world: World) -> None:
    add_member(world.inst, "ALPHA", "zed", "member")


def _zed_out(world: World) -> None:
    with suppress(NotFoundError):  # already out
        remove_member(world.inst, "ALPHA", "zed")


def _zip(world: World) -> bytes:
    cached = getattr(world, "_zip", None)
    if cached is None:
        cached = zip_of_study(world.settings.home.parent / "zip-input")
        world._zip = cached  # type: ignore[attr-defined]
    return cached


#: A stored spec that selects nothing: the jobs the matrix starts end at once (failed).
NOTHING = "name: nothing\nselect: {participants: [TP-9999]}\n"


def _nothing_spec(world: World) -> None:
    project = get_project(world.inst, "ALPHA")
    if stored_spec(world.inst, project, "nothing") is None:
        save_spec(world.inst, project, NOTHING, "olivia")


def _done_export(world: World) -> None:
    """A finished export of ALPHA for the routes that look at one."""
    if getattr(world, "done_export", None) is None:
        world.done_export = finished_export(world)  # type: ignore[attr-defined]
    world.export_id = world.done_export  # type: ignore[attr-defined]


def _failed_export(world: World) -> None:
    """A failed export for each resume (a resumed one is queued, then fails again)."""
    world.export_id = failed_export(world, NOTHING)  # type: ignore[attr-defined]


ASSIGN_FORM = {"project": "ALPHA", "participant": "", "new_participant": "TP-0003",
               "event": "baseline"}
COUPLING = b"accession_number,project,participant,event\nACC-1,ALPHA,TP-0009,baseline\n"


def _quarantined(world: World) -> None:
    """A study received over DICOM, waiting in the quarantine (assigned by the first call;
    the same assignment again is allowed)."""
    if getattr(world, "study_id", None) is None:
        world.study_id = quarantined_study(world)  # type: ignore[attr-defined]


V, R, M, A = Permission.VIEW, Permission.REVIEW, Permission.MEMBERS, Permission.AUDIT
E, D = Permission.EXPORT, Permission.DOWNLOAD
ROUTES = [
    Route("GET", "/", PUBLIC),
    Route("GET", "/login", PUBLIC),
    Route("POST", "/logout", LOGGED_IN),
    Route("GET", "/projects", LOGGED_IN),
    Route("GET", "/projects/{acronym}", V),
    Route("GET", "/projects/{acronym}/series", V),
    Route("GET", "/projects/{acronym}/series/{series_id}/thumbnail.png", V),
    Route("GET", "/projects/{acronym}/review", R),
    Route("GET", "/projects/{acronym}/review/values?tag_path=00100020", R),
    Route("POST", "/projects/{acronym}/review/checks", R, {"tag_path": "00080060"}),
    Route("GET", "/review-zip", LOGGED_IN),
    Route("POST", "/review-zip", LOGGED_IN, _zip),
    Route("GET", "/projects/{acronym}/members", M),
    Route("POST", "/projects/{acronym}/members", M, {"name": "zed", "role": "member"},
          _zed_out),
    Route("POST", "/projects/{acronym}/members/remove", M, {"name": "zed"}, _zed_in),
    Route("GET", "/projects/{acronym}/audit", A),
    Route("GET", "/audit", ADMIN),
    Route("GET", "/api/openapi.json", PUBLIC),
    Route("GET", "/api/me", LOGGED_IN),
    Route("GET", "/api/projects", LOGGED_IN),
    Route("GET", "/api/projects/{acronym}", V),
    Route("GET", "/api/projects/{acronym}/overview", V),
    Route("GET", "/api/projects/{acronym}/series", V),
    Route("GET", "/api/projects/{acronym}/review", R),
    Route("GET", "/api/projects/{acronym}/review/values?tag_path=00100020", R),
    Route("POST", "/api/projects/{acronym}/review/checks", R, {"tag_paths": ["00080060"]}),
    Route("POST", "/api/review-zip", LOGGED_IN, _zip),
    Route("GET", "/api/projects/{acronym}/members", M),
    Route("PUT", "/api/projects/{acronym}/members/zed", M, {"role": "member"}, _zed_out),
    Route("DELETE", "/api/projects/{acronym}/members/zed", M, None, _zed_in),
    Route("GET", "/api/projects/{acronym}/audit", A),
    Route("GET", "/api/audit", ADMIN),
    Route("GET", "/projects/{acronym}/exports", E),
    Route("POST", "/projects/{acronym}/export-specs", E, {"text": NOTHING}),
    Route("GET", "/projects/{acronym}/exports/plan?spec=research-package", E),
    Route("POST", "/projects/{acronym}/exports", E, {"spec": "nothing"}, _nothing_spec),
    Route("GET", "/exports/{export_id}", E, None, _done_export),
    Route("POST", "/exports/{export_id}/resume", E, None, _failed_export),
    Route("GET", "/assign", ASSIGNER),
    Route("GET", "/assign/{study_id}?project=ALPHA", ASSIGNER, None, _quarantined),
    Route("POST", "/assign/{study_id}", ASSIGNER, ASSIGN_FORM, _quarantined),
    Route("POST", "/coupling-lists", ASSIGNER, lambda w: COUPLING, None, "coupling_list"),
    Route("GET", "/api/quarantine", ASSIGNER),
    Route("POST", "/api/quarantine/{study_id}/assign", ASSIGNER,
          {"project": "ALPHA", "participant": "TP-0003", "event": "baseline"}, _quarantined),
    Route("POST", "/api/coupling-lists", ASSIGNER, lambda w: COUPLING),
    Route("GET", "/api/projects/{acronym}/export-specs", E),
    Route("POST", "/api/projects/{acronym}/export-specs", E, lambda w: NOTHING.encode()),
    Route("GET", "/api/projects/{acronym}/exports/plan?spec=research-package", E),
    Route("GET", "/api/projects/{acronym}/exports", E),
    Route("POST", "/api/projects/{acronym}/exports", E, {"spec": "nothing"}, _nothing_spec),
    Route("GET", "/api/exports/{export_id}", E, None, _done_export),
    Route("POST", "/api/exports/{export_id}/resume", E, None, _failed_export),
    Route("GET", "/api/exports/{export_id}/download", D, None, _done_export),
]


def expected(route: Route, role: str) -> str:
    """``ok``, ``login`` (401 or a redirect to the login page), ``403`` or ``404``."""
    if route.access == PUBLIC:
        return "ok"
    if role == "anonymous":
        return "login"
    if route.access == LOGGED_IN:
        return "ok"
    if route.access == ADMIN:
        return "ok" if role == "admin" else "403"
    if route.access == ASSIGNER:
        assigns = role == "admin" or (role in {r.value for r in Role}
                                      and Permission.ASSIGN in ROLE_PERMISSIONS[Role(role)])
        return "ok" if assigns else "403"
    if role == "admin":
        return "ok"
    if role == "non-member":
        return "404"
    return "ok" if route.access in ROLE_PERMISSIONS[Role(role)] else "403"


def outcome(status: int, location: str | None, route: Route) -> str:
    if status == 401 and route.api:
        return "login"
    if status == 303 and (location or "").startswith("/login?next="):
        return "login"
    if status in (403, 404):
        return str(status)
    if status < 400:
        return "ok"
    return f"unexpected {status}"


@pytest.fixture(scope="module")
def sessions(web_world: World) -> dict[str, tuple[Any, str]]:
    """A logged-in page client (and CSRF token) per role; logout is tried last per role."""
    return {role: web_world.login(user) for role, user in USER_OF.items()}


def _call(world: World, sessions: dict[str, Any], route: Route, role: str) -> Any:
    if route.setup:
        route.setup(world)
    path = route.path.replace("{acronym}", "ALPHA").replace(
        "{series_id}", str(world.series_ids[0])).replace(
        "{export_id}", str(getattr(world, "export_id", 0))).replace(
        "{study_id}", str(getattr(world, "study_id", 0)))
    body = route.body(world) if callable(route.body) else route.body
    if route.api or route.access == PUBLIC:
        client = world.client()
        headers = ({"Authorization": f"Bearer {world.tokens[USER_OF[role]]}"}
                   if role != "anonymous" else {})
        if isinstance(body, bytes):
            headers["Content-Type"] = "application/zip"
            return client.request(route.method, path, content=body, headers=headers)
        return client.request(route.method, path, json=body, headers=headers)
    if role == "anonymous":
        client, token = world.client(), ""
    else:
        client, token = sessions[role]
    if route.method == "GET":
        return client.get(path)
    if isinstance(body, bytes):
        return client.post(path, data={"csrf_token": token},
                           files={route.upload_field: ("upload", body, "application/zip")})
    return client.post(path, data={**(body or {}), "csrf_token": token})


# Logging out ends the role's session, so it runs after every other route.
_ORDERED = sorted(ROUTES, key=lambda r: r.path == "/logout")


@pytest.mark.parametrize("role", ROLES)
def test_route_role_matrix(web_world: World, sessions: dict[str, Any], role: str):
    wrong = []
    for route in _ORDERED:
        answer = _call(web_world, sessions, route, role)
        got = outcome(answer.status_code, answer.headers.get("location"), route)
        if got != expected(route, role):
            wrong.append(f"{route.method} {route.path}: expected {expected(route, role)}, "
                         f"got {got} ({answer.text[:120]})")
    assert not wrong, "\n".join(wrong)


def test_every_route_is_in_the_matrix():
    declared = {(method, route.path) for router in (pages.router, api.router)
                for route in router.routes if isinstance(route, APIRoute)
                for method in route.methods}
    declared |= {("GET", "/api/openapi.json")}
    declared -= {("POST", "/login")}  # the login itself: see tests/test_web.py
    assert ("GET", "/api/projects") in declared
    tested = {(r.method, r.path.split("?")[0].replace("/zed", "/{name}")) for r in ROUTES}
    assert declared - tested == set(), "routes missing from the matrix"
    assert tested - declared == set(), "matrix rows without a route"


def test_the_role_table_names_export_and_download():
    assert Permission.EXPORT in ROLE_PERMISSIONS[Role.DATA_MANAGER]
    assert Permission.DOWNLOAD in ROLE_PERMISSIONS[Role.DATA_MANAGER]
    assert Permission.EXPORT not in ROLE_PERMISSIONS[Role.MEMBER]
    assert Permission.DOWNLOAD not in ROLE_PERMISSIONS[Role.MEMBER]
    # Roles are cumulative, as the README says: owner ⊇ data-manager ⊇ member.
    assert ROLE_PERMISSIONS[Role.MEMBER] <= ROLE_PERMISSIONS[Role.DATA_MANAGER] \
        <= ROLE_PERMISSIONS[Role.OWNER]
    assert set(USER_OF.values()) <= set(PEOPLE)
