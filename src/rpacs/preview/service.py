"""Series thumbnails: the middle image of a series, rendered once and kept in a cache.

The cache lives under ``RPACS_HOME/cache/thumbnails`` and may be deleted at any time. A
thumbnail's name holds the checksum of the file it was made from, so a series that gains
images (and so a new middle image) gets a new thumbnail instead of a stale one.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

import pydicom
from sqlalchemy import select

from ..db import Instance, Project, Series, Study
from ..deid import quiet  # noqa: F401  (pydicom's value warnings off)
from ..errors import NotFoundError
from ..installation import Installation
from .render import render_png

log = logging.getLogger(__name__)


def _middle_instance(inst: Installation, project: Project, series_id: int) -> Instance:
    with inst.db.session() as session:
        found = session.execute(
            select(Series).join(Study, Study.id == Series.study_id)
            .where(Series.id == series_id, Study.project_id == project.id)).scalar()
        if found is None:
            raise NotFoundError(f"no series {series_id} in {project.acronym}")
        instances = session.scalars(
            select(Instance).where(Instance.series_id == series_id)
            .order_by(Instance.instance_number, Instance.sop_uid)).all()
    if not instances:
        raise NotFoundError(f"series {series_id} of {project.acronym} has no stored image")
    return instances[len(instances) // 2]


def series_thumbnail(inst: Installation, project: Project, series_id: int) -> bytes | None:
    """The PNG thumbnail of a series of ``project``; None when its pixels cannot be shown.

    NotFoundError when the series is not one of the project's, so that a series number
    cannot be used to look into another project.
    """
    instance = _middle_instance(inst, project, series_id)
    cache = inst.settings.thumbnail_dir / project.acronym
    path = cache / f"{series_id}-{instance.sha256[:20]}.png"
    if path.is_file():
        return path.read_bytes()
    try:
        ds = pydicom.dcmread(inst.settings.store_dir / instance.path)
        png = render_png(ds)
    except Exception as exc:  # no pixel data, a syntax no handler decodes, a broken file
        # The exception's type only: its text may quote values from the file.
        log.info("no thumbnail for series %s of %s (%s)", series_id, project.acronym,
                 type(exc).__name__)
        return None
    _write_atomically(path, png)
    return png


def _write_atomically(path: Path, data: bytes) -> None:
    """Write under a temporary name and rename: a reader never sees half a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
