"""The tag inventory: every tag path present in a project's data, with its values counted.

The entries come from the import's workers (:mod:`rpacs.review.entries`, made from the
*de-identified* dataset, so the inventory can only ever hold what was stored) and are
counted here, in the index, in batches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ..db import TagInventory, TagValue, upsert
from .content import PATH_LENGTH, InstanceEntries, TagEntry


def _counts(instances: Iterable[InstanceEntries]
            ) -> tuple[Counter[str], Counter[tuple[str, str]], dict[str, tuple[str, str]]]:
    """(instances per tag path, instances per (tag path, value), keyword and VR per path).

    Each path and value counts once per instance. Groups of one instance share no path, so
    an instance is counted as its groups, and each distinct group is read once however
    many instances of a batch carry it (Counter.update counts the groups in C).
    """
    groups: Counter[frozenset[TagEntry]] = Counter()
    for instance in instances:
        groups.update(instance)
    paths: Counter[str] = Counter()
    values: Counter[tuple[str, str]] = Counter()
    meta: dict[str, tuple[str, str]] = {}
    for group, n in groups.items():
        if len(group) == 1:  # most groups: one element's one value
            ((path, keyword, vr, value),) = group
            path = path[:PATH_LENGTH]
            values[path, value] += n
            paths[path] += n
            meta.setdefault(path, (keyword, vr))
            continue
        # A path met several times in one group (items of a sequence) counts once.
        pairs = {(path[:PATH_LENGTH], value) for path, _, _, value in group}
        for pair in pairs:
            values[pair] += n
        for path in {path for path, _ in pairs}:
            paths[path] += n
        for path, keyword, vr, _ in group:
            # The first entry of a path (in iteration order) names its keyword and VR.
            meta.setdefault(path[:PATH_LENGTH], (keyword, vr))
    return paths, values, meta


def add_to_inventory(
    session: Session, project_id: int, instances: Iterable[InstanceEntries]
) -> None:
    """Count each tag path and (tag path, value) once per instance, in a few statements."""
    paths, values, meta = _counts(instances)
    if not paths:
        return
    upsert(
        session,
        TagInventory.__table__,
        [
            {"project_id": project_id, "tag_path": p, "keyword_path": meta[p][0][:400],
             "vr": meta[p][1][:2], "n_instances": n, "n_distinct": 0}
            for p, n in sorted(paths.items())
        ],
        keys=("project_id", "tag_path"),
        add=("n_instances",),
    )
    rows = [
        {"project_id": project_id, "tag_path": p, "value": v, "n_instances": n}
        for (p, v), n in sorted(values.items())
    ]
    for start in range(0, len(rows), 5000):
        upsert(session, TagValue.__table__, rows[start:start + 5000],
               keys=("project_id", "tag_path", "value"), add=("n_instances",))
    _recount_distinct(session, project_id, paths)


def remove_from_inventory(
    session: Session, project_id: int, instances: Iterable[InstanceEntries]
) -> None:
    """Undo :func:`add_to_inventory` for instances deleted from the project.

    Counts drop by what those instances contributed; a path or value no instance carries
    any more disappears from the inventory.
    """
    paths, values, _ = _counts(instances)
    if not paths:
        return
    for (path, value), n in values.items():
        session.execute(
            update(TagValue)
            .where(TagValue.project_id == project_id, TagValue.tag_path == path,
                   TagValue.value == value)
            .values(n_instances=TagValue.n_instances - n))
    for path, n in paths.items():
        session.execute(
            update(TagInventory)
            .where(TagInventory.project_id == project_id, TagInventory.tag_path == path)
            .values(n_instances=TagInventory.n_instances - n))
    session.execute(delete(TagValue).where(TagValue.project_id == project_id,
                                           TagValue.n_instances <= 0))
    session.execute(delete(TagInventory).where(TagInventory.project_id == project_id,
                                               TagInventory.n_instances <= 0))
    _recount_distinct(session, project_id, paths)


def _recount_distinct(session: Session, project_id: int, paths: Iterable[str]) -> None:
    """Set ``n_distinct`` of the inventory rows of ``paths`` from their value rows."""
    distinct = (
        select(func.count())
        .where(TagValue.project_id == TagInventory.project_id,
               TagValue.tag_path == TagInventory.tag_path)
        .scalar_subquery()
    )
    touched = sorted(paths)
    for start in range(0, len(touched), 500):
        session.execute(
            update(TagInventory)
            .where(TagInventory.project_id == project_id,
                   TagInventory.tag_path.in_(touched[start:start + 500]))
            .values(n_distinct=distinct)
        )
