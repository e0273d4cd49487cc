"""The HTML pages. Each handler is thin: authorization by dependency, work by a service."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ..accounts import (
    Permission,
    Principal,
    ProjectAccess,
    Role,
    add_member,
    authenticate,
    end_sessions,
    project_members,
    remove_member,
    visible_projects,
)
from ..audit import AuditQuery, audit_events
from ..errors import AuthenticationError, ConflictError, InvalidInputError
from ..export import (
    LISTED_BUILTINS,
    dry_run,
    export_job,
    export_risk,
    project_exports,
    resolve_spec,
    resume_export,
    save_spec,
    start_export,
    stored_spec,
    stored_specs,
)
from ..preview import series_thumbnail
from ..projects import ethics_state, project_summary, series_list, study_grid
from ..quarantine import Quarantine
from ..review import (
    ReviewFilter,
    mark_checked,
    record_zip_review,
    review_table,
    review_zip,
    tag_values,
)
from ..review.table import SORT_KEYS
from ..routing import assign_received, upload_coupling_list
from ..routing.coupling import MAX_COUPLING_BYTES
from .access import (
    assign_access,
    assignable_projects,
    check_login_form,
    csrf_token,
    current_principal,
    installation,
    require,
    require_admin,
    require_assigner,
    require_export,
    start_session,
)
from .params import audit_query, review_filter
from .uploads import receive_upload

router = APIRouter(include_in_schema=False)

_PLACEHOLDER = (Path(__file__).parent / "static" / "no-image.svg").read_bytes()


def page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    templates: Jinja2Templates = request.app.state.templates
    context.setdefault("principal", getattr(request.state, "principal", None))
    if context["principal"] is not None and "can_assign" not in context:
        context["can_assign"] = bool(assignable_projects(installation(request),
                                                         context["principal"]))
    context["csrf_token"] = csrf_token(request)
    return templates.TemplateResponse(request, template, context, status_code=status)


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never ``//host`` or ``https://host`` (an open redirect)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/projects"


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _flash(request: Request, path: str, message: str) -> None:
    """Say what an action did on the page at ``path`` it redirects to, once.

    Kept in the (signed) session, never in the URL: a message in the URL could be
    written by anyone who sends a link ("Saved spec ...", "assigned to ...").
    """
    request.session["flash"] = {"path": path, "text": message[:200]}


def _flashed(request: Request) -> str:
    """The message :func:`_flash` left for this page ("" if none); shown once."""
    found = request.session.get("flash")
    if not isinstance(found, dict) or found.get("path") != request.url.path:
        return ""
    request.session.pop("flash")
    return str(found.get("text", ""))


# --- logging in and out -----------------------------------------------------------------


@router.get("/")
def home() -> Response:
    return _see_other("/projects")


@router.get("/login")
def login_form(request: Request, next: str = "/projects") -> Response:
    return page(request, "login.html", next=_safe_next(next), error=None, name="")


@router.post("/login", dependencies=[Depends(check_login_form)])
def login(request: Request, name: str = Form(""), password: str = Form(""),
                next: str = Form("/projects")) -> Response:
    try:
        principal = authenticate(installation(request), name, password)
    except AuthenticationError as exc:
        return page(request, "login.html", status=401, next=_safe_next(next),
                    error=str(exc), name=name)
    start_session(request, principal)
    return _see_other(_safe_next(next))


@router.post("/logout")
def logout(request: Request,
                 principal: Principal = Depends(current_principal)) -> Response:
    end_sessions(installation(request), principal)
    request.session.clear()
    return _see_other("/login")


# --- projects ---------------------------------------------------------------------------


@router.get("/projects")
def projects(request: Request,
                   principal: Principal = Depends(current_principal)) -> Response:
    inst = installation(request)
    rows = []
    for access in visible_projects(inst, principal):
        summary = project_summary(inst, access.project)
        summary["role"] = access.role.value if access.role else "admin"
        summary["ethics"] = ethics_state(access.project.end_date)
        rows.append(summary)
    return page(request, "projects.html", projects=rows)


def _nav(access: ProjectAccess) -> dict[str, bool]:
    return {p.value: access.allows(p) for p in Permission}


@router.get("/projects/{acronym}")
def project_overview(request: Request,
                           access: ProjectAccess = Depends(require(Permission.VIEW))
                           ) -> Response:
    inst = installation(request)
    return page(request, "project.html", access=access, can=_nav(access),
                summary=project_summary(inst, access.project),
                grid=study_grid(inst, access.project),
                ethics=ethics_state(access.project.end_date))


@router.get("/projects/{acronym}/series")
def project_series(request: Request, participant: str = "", event: str = "",
                         access: ProjectAccess = Depends(require(Permission.VIEW))
                         ) -> Response:
    rows = series_list(installation(request), access.project, participant or None,
                       event or None)
    return page(request, "series.html", access=access, can=_nav(access), series=rows,
                participant=participant, event=event)


@router.get("/projects/{acronym}/series/{series_id}/thumbnail.png")
def thumbnail(request: Request, series_id: int,
                    access: ProjectAccess = Depends(require(Permission.VIEW))) -> Response:
    png = series_thumbnail(installation(request), access.project, series_id)
    headers = {"Cache-Control": "private, max-age=3600"}
    if png is None:
        return Response(_PLACEHOLDER, media_type="image/svg+xml", headers=headers)
    return Response(png, media_type="image/png", headers=headers)


# --- review -----------------------------------------------------------------------------


@router.get("/projects/{acronym}/review")
def review(request: Request, wanted: ReviewFilter = Depends(review_filter),
                 access: ProjectAccess = Depends(require(Permission.REVIEW))) -> Response:
    rows = review_table(installation(request), access.project, wanted)
    params = {k: v for k, v in request.query_params.items() if k not in ("sort", "desc")}

    def sort_link(column: str) -> str:
        desc = column == wanted.sort and not wanted.descending
        return "?" + urlencode({**params, "sort": column, **({"desc": "1"} if desc else {})})

    return page(request, "review.html", access=access, can=_nav(access), rows=rows,
                wanted=wanted, sort_link=sort_link, columns=list(SORT_KEYS),
                query_string=request.url.query)


@router.get("/projects/{acronym}/review/values")
def review_values(request: Request, tag_path: str = Query(..., max_length=200),
                        access: ProjectAccess = Depends(require(Permission.REVIEW))
                        ) -> Response:
    found = tag_values(installation(request), access.project, tag_path)
    return page(request, "values.html", access=access, can=_nav(access), found=found)


@router.post("/projects/{acronym}/review/checks")
async def review_checks(request: Request,
                        access: ProjectAccess = Depends(require(Permission.REVIEW))
                        ) -> Response:
    form = await request.form()
    paths = [str(p) for p in form.getlist("tag_path")]
    await run_in_threadpool(mark_checked, installation(request), access.project, paths,
                            access.principal.name)
    back = str(form.get("back", ""))
    url = f"/projects/{access.project.acronym}/review"
    return _see_other(url + (f"?{back}" if back and not back.startswith(("/", "?")) else ""))


@router.get("/review-zip")
def review_zip_form(request: Request,
                          principal: Principal = Depends(current_principal)) -> Response:
    limit = installation(request).settings.review_upload_max_mb
    return page(request, "review_zip.html", result=None, limit_mb=limit, error=None)


@router.post("/review-zip")
async def review_zip_upload(request: Request,
                            principal: Principal = Depends(current_principal)) -> Response:
    inst = installation(request)
    limit = inst.settings.review_upload_max_mb
    with tempfile.TemporaryDirectory(dir=inst.settings.tmp_dir, prefix="upload-") as folder:
        try:
            upload = await receive_upload(request, Path(folder), limit * 2**20,
                                          form_field="package")
            result = await run_in_threadpool(review_zip, upload, Path(folder), limit * 2**20)
        except InvalidInputError as exc:
            return page(request, "review_zip.html", status=422, result=None, limit_mb=limit,
                        error=exc.problems)
    await run_in_threadpool(record_zip_review, inst, principal.name, result)
    return page(request, "review_zip.html", result=result, limit_mb=limit, error=None)


# --- members and audit ------------------------------------------------------------------


@router.get("/projects/{acronym}/members")
def members(request: Request,
                  access: ProjectAccess = Depends(require(Permission.MEMBERS))) -> Response:
    return page(request, "members.html", access=access, can=_nav(access),
                members=project_members(installation(request), access.project),
                roles=[r.value for r in Role])


@router.post("/projects/{acronym}/members")
def members_add(request: Request, name: str = Form(...), role: str = Form(...),
                      access: ProjectAccess = Depends(require(Permission.MEMBERS))
                      ) -> Response:
    add_member(installation(request), access.project.acronym, name, role,
               actor=access.principal.name)
    return _see_other(f"/projects/{access.project.acronym}/members")


@router.post("/projects/{acronym}/members/remove")
def members_remove(request: Request, name: str = Form(...),
                         access: ProjectAccess = Depends(require(Permission.MEMBERS))
                         ) -> Response:
    remove_member(installation(request), access.project.acronym, name,
                  actor=access.principal.name)
    return _see_other(f"/projects/{access.project.acronym}/members")


@router.get("/projects/{acronym}/audit")
def project_audit(request: Request, query: AuditQuery = Depends(audit_query),
                        access: ProjectAccess = Depends(require(Permission.AUDIT))
                        ) -> Response:
    events = audit_events(installation(request),
                          AuditQuery(**{**query.__dict__, "project_id": access.project.id}))
    return page(request, "audit.html", access=access, can=_nav(access), events=events,
                query=query)


@router.get("/audit")
def audit(request: Request, query: AuditQuery = Depends(audit_query),
                principal: Principal = Depends(require_admin)) -> Response:
    return page(request, "audit.html", access=None, can={}, query=query,
                events=audit_events(installation(request), query))


# --- exports ----------------------------------------------------------------------------

#: What the spec editor starts with: a small spec that says what each key is for.
SPEC_EXAMPLE = """\
name: my-export
description: What the collaborator gets, in one line
select: {events: [baseline], modalities: [MR]}
identity: {participant: random, pattern: "EXP{n:04d}", coupling_list: true}
dates: shift
formats: [dicom]
package: zip-per-participant
"""


def _exports_page(request: Request, access: ProjectAccess, *, status: int = 200,
                  spec_text: str = "", problems: list[str] | None = None,
                  message: str = "") -> Response:
    inst = installation(request)
    return page(request, "exports.html", status=status, access=access, can=_nav(access),
                builtins=LISTED_BUILTINS, stored=stored_specs(inst, access.project),
                jobs=project_exports(inst, access.project),
                spec_text=spec_text or SPEC_EXAMPLE, problems=problems or [], message=message)


def _exports_url(access: ProjectAccess) -> str:
    return f"/projects/{access.project.acronym}/exports"


@router.get("/projects/{acronym}/exports")
def exports(request: Request, edit: str = Query("", max_length=64),
            access: ProjectAccess = Depends(require(Permission.EXPORT))) -> Response:
    found = stored_spec(installation(request), access.project, edit) if edit else None
    return _exports_page(request, access, spec_text=found.text if found else "",
                         message=_flashed(request))


@router.post("/projects/{acronym}/export-specs")
def export_spec_save(request: Request, text: str = Form(""),
                     access: ProjectAccess = Depends(require(Permission.EXPORT))
                     ) -> Response:
    try:
        spec = save_spec(installation(request), access.project, text, access.principal.name)
    except InvalidInputError as exc:  # shown in place, beside the text as typed
        return _exports_page(request, access, status=422, spec_text=text,
                             problems=exc.problems)
    _flash(request, _exports_url(access), f"Saved spec {spec.name}.")
    return _see_other(_exports_url(access) + "#specs")


@router.get("/projects/{acronym}/exports/plan")
def export_plan(request: Request, spec: str = Query(..., min_length=1, max_length=200),
                access: ProjectAccess = Depends(require(Permission.EXPORT))) -> Response:
    inst = installation(request)
    plan = dry_run(inst, access.project, resolve_spec(inst, access.project, spec))
    return page(request, "export_plan.html", access=access, can=_nav(access), plan=plan,
                spec_name=spec)


@router.post("/projects/{acronym}/exports")
def export_start(request: Request, spec: str = Form(..., min_length=1, max_length=200),
                 access: ProjectAccess = Depends(require(Permission.EXPORT))) -> Response:
    inst = installation(request)
    job = start_export(inst, access.project, resolve_spec(inst, access.project, spec),
                       access.principal.name)
    return _see_other(f"/exports/{job.id}")


@router.get("/exports/{export_id}")
def export_page(request: Request, export_id: int,
                access: ProjectAccess = Depends(require_export(Permission.EXPORT))
                ) -> Response:
    inst = installation(request)
    return page(request, "export_job.html", access=access, can=_nav(access),
                job=export_job(inst, export_id), risk=export_risk(inst, export_id))


@router.post("/exports/{export_id}/resume")
def export_resume(request: Request, export_id: int,
                  access: ProjectAccess = Depends(require_export(Permission.EXPORT))
                  ) -> Response:
    resume_export(installation(request), export_id, access.principal.name)
    return _see_other(f"/exports/{export_id}")


# --- assigning received studies ---------------------------------------------------------

#: The quarantine states the Assign page lists (assigned studies are in their projects).
_WAITING = ("complete", "receiving", "refused")


def _ids(projects: list[ProjectAccess]) -> list[int]:
    return [a.project.id for a in projects]


def _assign_page(request: Request, projects: list[ProjectAccess], *, status: int = 200,
                 message: str = "", problems: list[str] | None = None) -> Response:
    entries = Quarantine(installation(request)).entries(_WAITING, _ids(projects))
    return page(request, "assign.html", status=status, entries=entries,
                projects=[a.project.acronym for a in projects], message=message,
                problems=problems or [])


@router.get("/assign")
def assign_list(request: Request,
                projects: list[ProjectAccess] = Depends(require_assigner)) -> Response:
    # What the last assignment or upload did (see _flash).
    return _assign_page(request, projects, message=_flashed(request))


def _study_form(request: Request, projects: list[ProjectAccess], study_id: int,
                acronym: str, *, status: int = 200, problems: list[str] | None = None,
                chosen: dict[str, str] | None = None) -> Response:
    inst = installation(request)
    # Waiting, or assigned to one of the caller's projects; else 404, as a wrong number.
    entry = Quarantine(inst).entry(study_id, _ids(projects))
    access = assign_access(projects, acronym) if acronym else (
        projects[0] if len(projects) == 1 else None)
    participants = study_grid(inst, access.project).participants if access else []
    return page(request, "assign_study.html", status=status, entry=entry,
                projects=[a.project.acronym for a in projects],
                project=access.project if access else None, participants=participants,
                problems=problems or [], chosen=chosen or {})


@router.get("/assign/{study_id}")
def assign_form(request: Request, study_id: int, project: str = Query("", max_length=64),
                projects: list[ProjectAccess] = Depends(require_assigner)) -> Response:
    return _study_form(request, projects, study_id, project)


@router.post("/assign/{study_id}")
def assign(request: Request, study_id: int, project: str = Form(...),
           participant: str = Form(""), new_participant: str = Form(""),
           event: str = Form(""),
           projects: list[ProjectAccess] = Depends(require_assigner)) -> Response:
    access = assign_access(projects, project)
    inst = installation(request)
    # A new ID typed in wins over the list: the list offers the participants there are.
    research_id = new_participant.strip() or participant
    try:
        outcome = assign_received(inst, study_id, access.project.acronym, research_id,
                                  event, actor=access.principal.name,
                                  project_ids=_ids(projects))
    except InvalidInputError as exc:
        return _study_form(request, projects, study_id, access.project.acronym, status=422,
                           problems=[p.removeprefix("--") for p in exc.problems],
                           chosen={"participant": participant, "event": event})
    if outcome.state == "refused":
        message = f"refused: {outcome.note}"
    else:
        message = (f"assigned to {access.project.acronym} {research_id} {event}: "
                   f"{outcome.imported} imported, {outcome.rejected} not imported")
    _flash(request, "/assign", message)
    return _see_other("/assign")


@router.post("/coupling-lists")
async def coupling_upload(request: Request,
                          projects: list[ProjectAccess] = Depends(require_assigner)
                          ) -> Response:
    inst = installation(request)
    principal = projects[0].principal
    form = await request.form()
    upload = form.get("coupling_list")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _assign_page(request, projects, status=422,
                            problems=["coupling_list: choose a CSV file to upload"])
    data = await upload.read(MAX_COUPLING_BYTES + 1)
    try:
        if len(data) > MAX_COUPLING_BYTES:
            raise InvalidInputError(f"{upload.filename}: larger than "
                                    f"{MAX_COUPLING_BYTES // 2**20} MB")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInputError(f"{upload.filename}: not UTF-8 text") from None
        count = await run_in_threadpool(
            upload_coupling_list, inst, text, source=Path(upload.filename).name[:100],
            actor=principal.name, projects={a.project.acronym for a in projects})
    except InvalidInputError as exc:
        return _assign_page(request, projects, status=422, problems=exc.problems)
    except ConflictError as exc:  # lines for another project's accession numbers
        return _assign_page(request, projects, status=409, problems=exc.problems)
    _flash(request, "/assign", f"stored {count} coupling entr{'y' if count == 1 else 'ies'}")
    return _see_other("/assign")
