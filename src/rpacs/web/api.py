"""The JSON API under ``/api``: what the pages do, for scripts (``Authorization: Bearer``).

Errors are ``{"detail": message, "problems": [...]}`` with the HTTP status of their kind:
401 without a valid token, 404 for a project the caller is not in, 403 for an action their
role does not allow, 422 for bad input.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..accounts import (
    Permission,
    Principal,
    ProjectAccess,
    Role,
    add_member,
    project_members,
    remove_member,
    visible_projects,
)
from ..audit import AuditQuery, audit_events
from ..errors import InvalidInputError
from ..export import (
    builtin_names,
    dry_run,
    export_download,
    export_job,
    project_exports,
    resolve_spec,
    resume_export,
    save_spec,
    start_export,
    stored_specs,
)
from ..export.stored import MAX_SPEC_CHARS
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
from ..routing import assign_received, upload_coupling_list
from ..routing.coupling import MAX_COUPLING_BYTES
from .access import (
    assign_access,
    current_principal,
    installation,
    require,
    require_admin,
    require_assigner,
    require_export,
)
from .params import audit_query, review_filter_all
from .uploads import read_body, receive_upload

router = APIRouter(prefix="/api", tags=["api"])


class TagPaths(BaseModel):
    tag_paths: list[str] = Field(..., min_length=1, max_length=5000,
                                 description="Tag paths of the inventory, e.g. '00100010'.")


class MemberRole(BaseModel):
    role: Role


class ExportRequest(BaseModel):
    spec: str = Field(..., min_length=1, max_length=200,
                      description="A built-in spec (research-package, anonymized-package, "
                                  "nifti, study:<StudyInstanceUID>) or a stored spec's name.")


@router.get("/me", summary="Who the token (or session) belongs to")
def me(principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    return {"name": principal.name, "admin": principal.is_admin}


@router.get("/projects", summary="The caller's projects, with counts")
def projects(request: Request,
                   principal: Principal = Depends(current_principal)) -> list[dict[str, Any]]:
    inst = installation(request)
    rows = []
    for access in visible_projects(inst, principal):
        summary = project_summary(inst, access.project)
        summary["role"] = access.role.value if access.role else None
        summary["ethics_end"] = ethics_state(access.project.end_date) or "ok"
        rows.append(summary)
    return rows


@router.get("/projects/{acronym}", summary="One project, with counts")
def project(request: Request,
                  access: ProjectAccess = Depends(require(Permission.VIEW))) -> dict[str, Any]:
    summary = project_summary(installation(request), access.project)
    summary["role"] = access.role.value if access.role else None
    return summary


@router.get("/projects/{acronym}/overview", summary="Participants × events grid")
def overview(request: Request,
                   access: ProjectAccess = Depends(require(Permission.VIEW))
                   ) -> dict[str, Any]:
    return study_grid(installation(request), access.project).as_dict()


@router.get("/projects/{acronym}/series", summary="Series, optionally of one participant/event")
def series(request: Request, participant: str = "", event: str = "",
                 access: ProjectAccess = Depends(require(Permission.VIEW))
                 ) -> list[dict[str, Any]]:
    return series_list(installation(request), access.project, participant or None,
                       event or None)


@router.get("/projects/{acronym}/review", summary="The tag inventory with flags and checks")
def review(request: Request, wanted: ReviewFilter = Depends(review_filter_all),
                 access: ProjectAccess = Depends(require(Permission.REVIEW))
                 ) -> dict[str, Any]:
    rows = review_table(installation(request), access.project, wanted)
    return {"project": access.project.acronym, "tags": [r.as_dict() for r in rows]}


@router.get("/projects/{acronym}/review/values",
            summary="All values of one tag path, with counts and the series carrying each")
def review_values(request: Request, tag_path: str = Query(..., max_length=200),
                        access: ProjectAccess = Depends(require(Permission.REVIEW))
                        ) -> dict[str, Any]:
    return tag_values(installation(request), access.project, tag_path).as_dict()


@router.post("/projects/{acronym}/review/checks", summary="Mark tag paths as checked")
def review_checks(request: Request, body: TagPaths,
                        access: ProjectAccess = Depends(require(Permission.REVIEW))
                        ) -> dict[str, Any]:
    count = mark_checked(installation(request), access.project, body.tag_paths,
                         access.principal.name)
    return {"checked": count, "by": access.principal.name}


@router.post("/review-zip", summary="The inventory of a zip of DICOM files; nothing is stored",
             openapi_extra={"requestBody": {"content": {"application/zip": {}}}})
async def review_zip_upload(request: Request,
                            principal: Principal = Depends(current_principal)
                            ) -> dict[str, Any]:
    inst = installation(request)
    limit = inst.settings.review_upload_max_mb * 2**20
    with tempfile.TemporaryDirectory(dir=inst.settings.tmp_dir, prefix="upload-") as folder:
        upload = await receive_upload(request, Path(folder), limit)
        result = await run_in_threadpool(review_zip, upload, Path(folder), limit)
    await run_in_threadpool(record_zip_review, inst, principal.name, result)
    return result.as_dict()


@router.get("/projects/{acronym}/members", summary="Members and their roles")
def members(request: Request,
                  access: ProjectAccess = Depends(require(Permission.MEMBERS))
                  ) -> list[dict[str, str]]:
    return project_members(installation(request), access.project)


@router.put("/projects/{acronym}/members/{name}", summary="Add a member or change the role")
def member_put(request: Request, name: str, body: MemberRole = Body(...),
                     access: ProjectAccess = Depends(require(Permission.MEMBERS))
                     ) -> dict[str, str]:
    add_member(installation(request), access.project.acronym, name, body.role.value,
               actor=access.principal.name)
    return {"name": name, "role": body.role.value}


@router.delete("/projects/{acronym}/members/{name}", summary="Remove a member")
def member_delete(request: Request, name: str,
                        access: ProjectAccess = Depends(require(Permission.MEMBERS))
                        ) -> dict[str, str]:
    remove_member(installation(request), access.project.acronym, name,
                  actor=access.principal.name)
    return {"removed": name}


@router.get("/projects/{acronym}/audit", summary="The project's audit log, newest first")
def project_audit(request: Request, query: AuditQuery = Depends(audit_query),
                        access: ProjectAccess = Depends(require(Permission.AUDIT))
                        ) -> list[dict[str, Any]]:
    return audit_events(installation(request),
                        AuditQuery(**{**query.__dict__, "project_id": access.project.id}))


@router.get("/audit", summary="The whole audit log (admins)")
def audit(request: Request, query: AuditQuery = Depends(audit_query),
                principal: Principal = Depends(require_admin)) -> list[dict[str, Any]]:
    return audit_events(installation(request), query)


# --- exports ------------------------------------------------------------------------------


@router.get("/projects/{acronym}/export-specs",
            summary="The specs an export can use: built-in names and the stored specs")
def export_specs(request: Request,
                 access: ProjectAccess = Depends(require(Permission.EXPORT))
                 ) -> dict[str, Any]:
    stored = stored_specs(installation(request), access.project)
    return {"builtin": builtin_names(), "stored": [s.as_dict() for s in stored]}


@router.post("/projects/{acronym}/export-specs",
             summary="Store an export spec (YAML body); 422 lists every problem",
             openapi_extra={"requestBody": {"content": {"application/yaml": {}}}})
async def export_spec_save(request: Request,
                           access: ProjectAccess = Depends(require(Permission.EXPORT))
                           ) -> dict[str, Any]:
    # Bytes, not characters: a character of the spec takes at most 4 bytes in UTF-8, and
    # save_spec itself holds the spec to MAX_SPEC_CHARS, as it does the page's.
    data = await read_body(request, 4 * MAX_SPEC_CHARS, "the spec")
    text = data.decode("utf-8", errors="replace")
    saved = await run_in_threadpool(save_spec, installation(request), access.project, text,
                                    access.principal.name)
    return saved.as_dict()


@router.get("/projects/{acronym}/exports/plan", summary="The dry run of an export")
def export_plan(request: Request, spec: str = Query(..., min_length=1, max_length=200),
                access: ProjectAccess = Depends(require(Permission.EXPORT))
                ) -> dict[str, Any]:
    inst = installation(request)
    return dry_run(inst, access.project, resolve_spec(inst, access.project, spec))


@router.get("/projects/{acronym}/exports", summary="The project's exports, newest first")
def exports(request: Request,
            access: ProjectAccess = Depends(require(Permission.EXPORT))
            ) -> list[dict[str, Any]]:
    return [job.as_dict() for job in project_exports(installation(request), access.project)]


@router.post("/projects/{acronym}/exports", status_code=202,
             summary="Start an export; it runs in the background (follow GET /api/exports/ID)")
def export_start(request: Request, body: ExportRequest,
                 access: ProjectAccess = Depends(require(Permission.EXPORT))
                 ) -> dict[str, Any]:
    inst = installation(request)
    spec = resolve_spec(inst, access.project, body.spec)
    return start_export(inst, access.project, spec, access.principal.name).as_dict()


@router.get("/exports/{export_id}", summary="An export's state (queued, running, done, failed) "
            "and progress")
def export_state(request: Request, export_id: int,
                 access: ProjectAccess = Depends(require_export(Permission.EXPORT))
                 ) -> dict[str, Any]:
    return export_job(installation(request), export_id).as_dict()


@router.post("/exports/{export_id}/resume", status_code=202,
             summary="Run a failed (or interrupted) export again; it continues where it was")
def export_resume(request: Request, export_id: int,
                  access: ProjectAccess = Depends(require_export(Permission.EXPORT))
                  ) -> dict[str, Any]:
    return resume_export(installation(request), export_id, access.principal.name).as_dict()


@router.get("/exports/{export_id}/download", summary="The package, as one zip",
            response_class=FileResponse)
def export_download_zip(request: Request, export_id: int,
                        access: ProjectAccess = Depends(require_export(Permission.DOWNLOAD))
                        ) -> FileResponse:
    inst = installation(request)
    path = export_download(inst, export_id, access.principal.name)
    name = export_job(inst, export_id).download_name
    return FileResponse(path, media_type="application/zip", filename=name)


# --- assigning received studies -----------------------------------------------------------


class AssignRequest(BaseModel):
    project: str = Field(..., min_length=1, max_length=64)
    participant: str = Field(..., min_length=1, max_length=64,
                             description="A research ID (the project's pattern)")
    event: str = Field(..., min_length=1, max_length=64)


@router.get("/quarantine", summary="Received studies waiting for an assignment, by number "
            "(never the patient's name or ID, nor the study's UID)")
def quarantine(request: Request, projects: list[ProjectAccess] = Depends(require_assigner)
               ) -> list[dict[str, Any]]:
    entries = Quarantine(installation(request)).entries(
        ("complete", "receiving", "refused"), [a.project.id for a in projects])
    return [e.as_listed() for e in entries]


@router.post("/quarantine/{study_id}/assign",
             summary="Assign a received study to project, participant and event; import it")
def quarantine_assign(request: Request, study_id: int, body: AssignRequest,
                      projects: list[ProjectAccess] = Depends(require_assigner)
                      ) -> dict[str, Any]:
    access = assign_access(projects, body.project)
    inst = installation(request)
    outcome = assign_received(inst, study_id, access.project.acronym, body.participant,
                              body.event, actor=access.principal.name,
                              project_ids=[a.project.id for a in projects])
    return {"state": outcome.state, "note": outcome.note, "imported": outcome.imported,
            "rejected": outcome.rejected}


@router.post("/coupling-lists", summary="Upload a coupling list (CSV body: accession_number,"
             "project,participant,event)",
             openapi_extra={"requestBody": {"content": {"text/csv": {}}}})
async def coupling_lists(request: Request,
                         projects: list[ProjectAccess] = Depends(require_assigner)
                         ) -> dict[str, int]:
    data = await read_body(request, MAX_COUPLING_BYTES, "the coupling list")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError("the coupling list is not UTF-8 text") from None
    count = await run_in_threadpool(
        upload_coupling_list, installation(request), text, source="coupling list",
        actor=projects[0].principal.name, projects={a.project.acronym for a in projects})
    return {"stored": count}
