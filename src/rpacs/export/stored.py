"""Export specs stored with a project: edited as YAML in the web app, chosen by name.

A stored spec is saved only when the engine's validation accepts it, under the name its
YAML gives; it may not take a built-in spec's name, so that a name always means one spec.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select

from ..audit import record_event
from ..db import ExportSpecText, Project
from ..errors import InvalidInputError
from ..installation import Installation
from .content import StoredSpecView
from .spec import ExportSpec, builtin_names, builtin_spec

#: Longest spec text accepted (a spec is a page of YAML; this leaves room for comments).
MAX_SPEC_CHARS = 64 * 1024
#: Built-in specs a user chooses from a list (``study:<uid>`` needs a UID: CLI and API).
LISTED_BUILTINS = tuple(n for n in builtin_names() if ":" not in n)


def _view(row: ExportSpecText) -> StoredSpecView:
    return StoredSpecView(name=row.name, text=row.text,
                          sha256=hashlib.sha256(row.text.encode("utf-8")).hexdigest(),
                          updated_by=row.updated_by,
                          updated_at=row.updated_at.isoformat() if row.updated_at else "")


def stored_specs(inst: Installation, project: Project) -> list[StoredSpecView]:
    """The project's stored specs, by name."""
    with inst.db.session() as session:
        rows = session.scalars(select(ExportSpecText).where(
            ExportSpecText.project_id == project.id).order_by(ExportSpecText.name))
        return [_view(row) for row in rows]


def stored_spec(inst: Installation, project: Project, name: str) -> StoredSpecView | None:
    with inst.db.session() as session:
        row = session.scalar(select(ExportSpecText).where(
            ExportSpecText.project_id == project.id, ExportSpecText.name == name))
        return _view(row) if row is not None else None


def save_spec(inst: Installation, project: Project, text: str, actor: str) -> StoredSpecView:
    """Validate ``text`` and store it under its ``name`` (replacing a spec of that name).

    InvalidInputError lists every problem, each naming its key, as ``rpacs export`` does.
    """
    if len(text) > MAX_SPEC_CHARS:
        raise InvalidInputError(f"spec: longer than {MAX_SPEC_CHARS // 1024} KiB")
    text = text.replace("\r\n", "\n")
    if not text.endswith("\n"):
        text += "\n"
    spec = ExportSpec.from_yaml(text, project.events)
    if spec.name in LISTED_BUILTINS or spec.name.startswith("study:"):
        raise InvalidInputError(f"name: '{spec.name}' is a built-in spec; choose another name")
    with inst.db.session() as session:
        row = session.scalar(select(ExportSpecText).where(
            ExportSpecText.project_id == project.id, ExportSpecText.name == spec.name))
        if row is None:
            row = ExportSpecText(project_id=project.id, name=spec.name, text=text,
                                 updated_by=actor[:100])
            session.add(row)
        else:
            row.text, row.updated_by = text, actor[:100]
            row.updated_at = func.now()  # type: ignore[assignment]
        record_event(session, actor[:100], "export.spec", project.id, 1, spec=spec.name,
                     spec_sha256=spec.sha256)
    saved = stored_spec(inst, project, spec.name)
    assert saved is not None
    return saved


def resolve_spec(inst: Installation, project: Project, name: str) -> ExportSpec:
    """A built-in spec, or the project's stored spec of that name (validated again)."""
    name = name.strip()
    builtin = builtin_spec(name) if name else None
    if builtin is not None:
        return builtin
    found = stored_spec(inst, project, name) if name else None
    if found is None:
        raise InvalidInputError(
            f"spec: '{name[:64]}' is neither a built-in spec ({', '.join(builtin_names())}) "
            f"nor a stored spec of {project.acronym}")
    try:
        return ExportSpec.from_yaml(found.text, project.events)
    except InvalidInputError as exc:  # stored when valid; the rules may have grown since
        raise InvalidInputError([f"stored spec {name}: {p}" for p in exc.problems]) from exc


__all__ = ["LISTED_BUILTINS", "resolve_spec", "save_spec", "stored_spec", "stored_specs"]
