"""The tag inventory: every tag path present in a project's data, with its values counted.

Built on the import's worker side from the *de-identified* dataset (so it can only ever hold
what was stored) and counted in the index in batches. Large binary values are never read:
for them only the presence of the tag is counted.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from functools import lru_cache
from typing import Any, NamedTuple

from pydicom import Dataset
from pydicom.datadict import (
    dictionary_VR,
    keyword_for_tag,
    private_dictionary_description,
    private_dictionary_VR,
)
from pydicom.dataelem import RawDataElement
from pydicom.tag import BaseTag
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ..db import TagInventory, TagValue, upsert

#: Values longer than this are cut; enough to recognise a value in the review.
VALUE_LENGTH = 128
#: Tag paths are cut to the index's column width (only absurdly deep nesting reaches it).
PATH_LENGTH = 200
#: VRs whose values are bytes: counted, never read.
BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})


class TagEntry(NamedTuple):
    """One tag path of one instance with one of its values ("" for binary and sequences)."""

    tag_path: str
    keyword_path: str
    vr: str
    value: str


#: One instance's entries in groups that share no tag path with each other — the entries
#: of one top-level element each, as :func:`written_groups` makes them, or one group for a
#: whole data set. The instances of a series share most of their groups (the same objects),
#: so a batch is counted by group, not by entry.
InstanceEntries = tuple[frozenset[TagEntry], ...]


#: VRs whose raw bytes are the text itself (padding aside) in every transfer syntax.
_RAW_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH",
                           "ST", "TM", "UC", "UI", "UR", "UT"})


def _raw_text(value: bytes | None) -> str:
    if not value:
        return ""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = value.decode("latin-1")
    # NUL inside a value (malformed files) is dropped: PostgreSQL text cannot hold it.
    return text.strip(" \x00").replace("\x00", "")[:VALUE_LENGTH]


def _value_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        text = "\\".join(str(v) for v in value)  # type: ignore[union-attr]
    elif isinstance(value, bytes):
        text = value.decode("latin-1", "replace")
    else:
        text = str(value)
    return text.strip(" \x00").replace("\x00", "")[:VALUE_LENGTH]


def _dictionary_vr(tag: int) -> str:
    """The VR of an implicit-VR element as the data dictionary has it ("UN" if unknown)."""
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"
    # Ambiguous VRs ("US or SS", "OB or OW") are resolved by pydicom on conversion.
    return "OW" if vr in ("OB or OW", "US or SS or OW") else vr


@lru_cache(maxsize=4096)
def _names(tag: int, creator: str) -> tuple[str, str]:
    """(path component, keyword) of a tag; private tags carry their creator.

    A private tag's keyword is its description in pydicom's private dictionary in brackets
    (``[CSA Image Header Info]@SIEMENS CSA HEADER``), or its tag when the creator is unknown.
    """
    name = f"{tag:08X}"
    if tag >> 16 & 1 and 0x0010 <= tag & 0xFFFF <= 0x00FF:
        return name, "PrivateCreator"
    keyword = keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
    if creator:
        with suppress(KeyError):  # a creator or element pydicom does not know: the tag
            keyword = f"[{private_dictionary_description(tag, creator)}]"
        return f"{name}@{creator}", f"{keyword}@{creator}"
    return name, keyword


def _implicit_vr(tag: int, creator: str) -> str:
    """The VR of an element read without one (implicit VR transfer syntax)."""
    if not tag >> 16 & 1:
        return _dictionary_vr(tag)
    if 0x0010 <= tag & 0xFFFF <= 0x00FF:
        return "LO"  # a private creator (PS3.5 7.8.1)
    return _private_vr(tag, creator) if creator else "UN"


@lru_cache(maxsize=4096)
def _private_vr(tag: int, creator: str) -> str:
    """The VR of an implicit-VR private element from pydicom's private dictionary, or UN."""
    try:
        vr = private_dictionary_VR(tag, creator)
    except KeyError:
        return "UN"
    return "OW" if " or " in vr and "OW" in vr else vr.split(" or ")[0]


#: One value (no backslash) of printable ASCII: every character set decodes it alike.
_ONE_PRINTABLE_VALUE = re.compile(rb"[ -\[\]-~]*")


def _private_creator(ds: Dataset, tag: int) -> str:
    group, element = tag >> 16, tag & 0xFFFF
    if element < 0x0100:
        return ""
    creator_tag = BaseTag(group << 16 | element >> 8)
    raw = ds._dict.get(creator_tag)
    if raw is None:
        return ""
    if type(raw) is RawDataElement and _ONE_PRINTABLE_VALUE.fullmatch(raw.value or b""):
        # What pydicom's conversion gives for one printable ASCII value, without converting.
        return (raw.value or b"").decode("ascii").strip()
    creator = ds[creator_tag]
    return str(creator.value).strip()


def tag_entries(ds: Dataset, _prefix: str = "", _keywords: str = "") -> set[TagEntry]:
    """Every (tag path, value) of ``ds``, file meta included, nested sequences as paths."""
    entries: set[TagEntry] = set()
    top = not _prefix
    if top and getattr(ds, "file_meta", None) is not None:
        entries |= tag_entries(ds.file_meta, "", "")
    for tag in list(ds._dict):
        raw = ds._dict[tag]
        tag_int = int(tag)
        key: object = None
        if top:
            # Instances of a series repeat most elements: by their bytes when unchanged, or
            # as the very object the de-identifier shared between them when changed. A
            # private element's entries also depend on its creator.
            if isinstance(raw, RawDataElement):
                if raw.value is not None and len(raw.value) <= _CACHED_VALUE_BYTES:
                    key = (tag_int, raw.VR, raw.value)
                    if tag_int >> 16 & 1:
                        key = (*key, _private_creator(ds, tag_int))
            elif not tag_int >> 16 & 1:
                key = id(raw)
            hit = _ELEMENT_ENTRIES.get(key) if key is not None else None
            if hit is not None and (hit[0] is raw or isinstance(raw, RawDataElement)):
                entries |= hit[1]
                continue
        found = _element_entries(ds, tag, raw, tag_int, _prefix, _keywords)
        if key is not None:
            if len(_ELEMENT_ENTRIES) >= _CACHE_ENTRIES:
                _ELEMENT_ENTRIES.clear()
            _ELEMENT_ENTRIES[key] = (raw, found)
        entries |= found
    return entries


def written_groups(
    file_meta: Dataset,
    elements: Iterable[tuple[int, str | None, Any]],
    subset: Callable[[Sequence[int]], Dataset],
) -> InstanceEntries:
    """:func:`tag_entries` of a data set given as its top-level elements — ``(tag, VR,
    raw value bytes)`` or ``(tag, VR, element)`` — without making the data set, in groups:
    the file meta's entries, then one group per element.

    The import's byte path writes most elements unchanged from file to file of a series, so
    their groups are looked up by their bytes and the very same group objects come back for
    every file: that is what lets :func:`add_to_inventory` count a batch by group rather
    than by entry. Only an element not met before is read, from ``subset(tags)`` (a data
    set of just that element and its private creator).
    """
    parts: list[frozenset[TagEntry]] = [frozenset(tag_entries(file_meta))]
    creators: dict[int, object] = {}
    cache = _WRITTEN_ENTRIES
    for tag, vr, value in elements:
        creator_tag = 0
        creator: object = b""
        if tag >> 16 & 1:
            element = tag & 0xFFFF
            if 0x0010 <= element <= 0x00FF:
                creators[tag] = value
            elif element >= 0x0100:
                creator_tag = (tag & 0xFFFF0000) | element >> 8
                creator = creators.get(creator_tag, b"")
        if (value is None or type(value) is bytes) and type(creator) is bytes:
            if value is None or len(value) <= _CACHED_VALUE_BYTES:
                key: object = (tag, vr, value, creator)
            else:  # a large value (pixel data): its entries are known when its VR is binary
                key = (tag, vr, "binary", creator)
            hit = cache.get(key)
            if hit is not None:
                parts.append(hit)
                continue
        else:
            key = None
        found = _public_raw_entries(tag, vr, value) if not tag >> 16 & 1 else None
        if found is None:
            ds = subset((tag, creator_tag) if creator_tag else (tag,))
            base = BaseTag(tag)
            found = _element_entries(ds, base, ds._dict[base], tag, "", "")
        if key is not None and (key[2] != "binary" or _all_binary(found)):
            if len(cache) >= _CACHE_ENTRIES:
                cache.clear()
            cache[key] = found
        parts.append(found)
    return tuple(parts)


def _public_raw_entries(tag: int, vr: str | None, value: object) -> frozenset[TagEntry] | None:
    """The entries of a public element read from its bytes alone — text or binary, as
    :func:`_element_entries` reads them — or None when its value must be converted."""
    if value is not None and type(value) is not bytes:
        return None
    vr = vr or _dictionary_vr(tag)
    if vr in BINARY_VRS:
        text = ""
    elif vr in _RAW_TEXT_VRS:
        text = _raw_text(value)  # type: ignore[arg-type]
    else:
        return None
    name, keyword = _names(tag, "")
    return frozenset({TagEntry(name, keyword, vr, text)})


def _all_binary(entries: frozenset[TagEntry]) -> bool:
    return all(entry.vr in BINARY_VRS for entry in entries)


#: Per worker process: (tag, VR, raw value, raw creator) → entries, for written_groups.
_WRITTEN_ENTRIES: dict[object, frozenset[TagEntry]] = {}
#: Per worker process: element → its entries (holding the element, so an id stays its own).
_ELEMENT_ENTRIES: dict[object, tuple[object, frozenset[TagEntry]]] = {}
_CACHED_VALUE_BYTES = 1024
_CACHE_ENTRIES = 50_000


def _element_entries(ds: Dataset, tag: object, raw: object, tag_int: int, prefix: str,
                     keywords: str) -> frozenset[TagEntry]:
    creator = _private_creator(ds, tag_int) if tag_int >> 16 & 1 else ""
    vr = raw.VR if raw is not None and raw.VR else _implicit_vr(tag_int, creator)  # type: ignore[attr-defined]
    if " or " in vr:  # a value set in memory whose VR pydicom resolves only on writing
        vr = "OW" if "OW" in vr else vr.split(" or ")[0]
    name, keyword = _names(tag_int, creator)
    path = f"{prefix}/{name}" if prefix else name
    kpath = f"{keywords}>{keyword}" if keywords else keyword
    if vr in BINARY_VRS:
        return frozenset({TagEntry(path, kpath, vr, "")})
    if isinstance(raw, RawDataElement) and vr in _RAW_TEXT_VRS:
        # Text stays undecoded by pydicom: its bytes are read here directly.
        return frozenset({TagEntry(path, kpath, vr, _raw_text(raw.value))})
    element = ds[tag] if isinstance(raw, RawDataElement) else raw
    if vr == "SQ":
        found = {TagEntry(path, kpath, vr, "")}
        for item in element.value or ():  # type: ignore[attr-defined]
            found |= tag_entries(item, path, kpath)
        return frozenset(found)
    return frozenset({TagEntry(path, kpath, vr, _value_text(element.value))})  # type: ignore[attr-defined]


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
        # A path met several times in one group (items of a sequence) counts once.
        pairs = {(entry.tag_path[:PATH_LENGTH], entry.value) for entry in group}
        for pair in pairs:
            values[pair] += n
        for path in {path for path, _ in pairs}:
            paths[path] += n
        for entry in group:
            # The first entry of a path (in iteration order) names its keyword and VR.
            meta.setdefault(entry.tag_path[:PATH_LENGTH], (entry.keyword_path, entry.vr))
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
