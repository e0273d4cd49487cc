"""An instance's tag inventory entries, read from its de-identified data set (pydicom).

Built on the import's worker side from the *de-identified* dataset, so the inventory can
only ever hold what was stored. Large binary values are never read: for them only the
presence of the tag is counted. Counting the entries in the index is
:mod:`rpacs.review.inventory`'s part, in the parent process.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from functools import lru_cache
from typing import Any

from pydicom import Dataset, FileMetaDataset
from pydicom.datadict import (
    dictionary_VR,
    keyword_for_tag,
    private_dictionary_description,
    private_dictionary_VR,
)
from pydicom.dataelem import RawDataElement
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.tag import BaseTag

from ..deid import quiet  # noqa: F401  (pydicom's value warnings off)
from .content import BINARY_VRS, VALUE_LENGTH, InstanceEntries, TagEntry
from .flags import ReviewContext, can_flag, value_flags

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
    return text.strip(" \x00").replace("\x00", "")


def _value_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        text = "\\".join(str(v) for v in value)  # type: ignore[union-attr]
    elif isinstance(value, bytes):
        text = value.decode("latin-1", "replace")
    else:
        text = str(value)
    return text.strip(" \x00").replace("\x00", "")


#: The flags that need no project: what a long value is judged by when it is cut.
_NO_CONTEXT = ReviewContext(frozenset(), "", "")
#: Opens a kept value that is not the value's beginning.
EXCERPT_MARK = "…"
#: Windows of a long value :func:`kept_text` searches at most (16 kB of text).
_EXCERPT_WINDOWS = 256


def kept_text(text: str, keyword_path: str, vr: str) -> str:
    """What the inventory keeps of a value: all of it, or its first :data:`VALUE_LENGTH`
    characters — unless the value is flagged for something (a name, a number, an address)
    that only comes further on. Then the stretch that shows it is kept instead, opened by
    :data:`EXCERPT_MARK`, so that the review, which reads the inventory, flags the value
    and shows the reviewer why: a name at the end of a long comment must not hide behind
    the column's width.
    """
    if len(text) <= VALUE_LENGTH:
        return text
    head = text[:VALUE_LENGTH]
    if not can_flag(vr):
        return head
    wanted = set(value_flags(keyword_path, vr, text, _NO_CONTEXT))
    shown = len(wanted & set(value_flags(keyword_path, vr, head, _NO_CONTEXT)))
    if shown == len(wanted):
        return head
    # Windows overlapping by half: whatever a flag matches (far shorter than a window)
    # lies wholly inside one of them. A value of many pages is searched in its first
    # _EXCERPT_WINDOWS windows and its last one only: every window costs the flags'
    # patterns, and a megabyte of them took seconds per value.
    width, step = VALUE_LENGTH - len(EXCERPT_MARK), VALUE_LENGTH // 2
    last = len(text) - width
    starts = [*range(step, min(last, step * _EXCERPT_WINDOWS), step), last]
    best = head
    for start in starts:
        window = EXCERPT_MARK + text[start:start + width]
        found = wanted & set(value_flags(keyword_path, vr, window, _NO_CONTEXT))
        if found == wanted:
            return window
        if len(found) > shown:
            best, shown = window, len(found)
    return best


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
        entries |= file_meta_entries(ds.file_meta)  # its group length as written
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


#: The MediaStorageSOPInstanceUID: in a file meta template, the one element per file.
_MEDIA_SOP_INSTANCE_UID = 0x00020003
#: The file meta's group length: what the file meta's other elements make it when written.
_GROUP_LENGTH = 0x00020000
#: Per worker process: the entries of a file meta template's other elements, by its id
#: (holding the template, so that the id stays its own), and its group length entries by
#: the length of the instance UID.
_META_ENTRIES: dict[int, tuple[object, frozenset[TagEntry], dict[int, frozenset[TagEntry]]]] = {}


def _without_group_length(elements: dict[BaseTag, Any]) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta._dict = {tag: element for tag, element in elements.items() if tag != _GROUP_LENGTH}
    return meta


def _group_length_entries(meta: FileMetaDataset) -> frozenset[TagEntry]:
    """The entries of the group length of ``meta`` (without one) as a file holds it: the
    bytes of its elements, written as the file meta always is (explicit VR little endian).
    A data set's own group length element may be the original file's, which the
    de-identified file's other UIDs make longer or shorter."""
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, meta)
    name, keyword = _names(_GROUP_LENGTH, "")
    return frozenset({TagEntry(name, keyword, "UL", str(len(fp.getvalue())))})


def file_meta_entries(file_meta: Dataset | tuple[dict[BaseTag, Any], bytes]
                      ) -> frozenset[TagEntry]:
    """:func:`tag_entries` of a written file meta: a data set, or a series' template of its
    elements and one file's instance UID (:meth:`~rpacs.deid.RawResult.meta_template`).
    The group length is the one the file holds (:func:`_group_length_entries`).

    A template's other elements are read once, and each file adds only its UID: making a
    FileMetaDataset per file (pydicom sets each of its attributes with a dictionary check)
    cost the import more than reading the file's own elements.
    """
    if isinstance(file_meta, Dataset):
        meta = _without_group_length(file_meta._dict)
        return frozenset(tag_entries(meta)) | _group_length_entries(meta)
    elements, uid = file_meta
    known = _META_ENTRIES.get(id(elements))
    if known is None or known[0] is not elements:
        others = FileMetaDataset()
        others._dict = {tag: element for tag, element in elements.items()
                        if tag not in (_MEDIA_SOP_INSTANCE_UID, _GROUP_LENGTH)}
        if len(_META_ENTRIES) >= 64:
            _META_ENTRIES.clear()
        known = _META_ENTRIES[id(elements)] = (elements, frozenset(tag_entries(others)), {})
    own = _public_raw_entries(_MEDIA_SOP_INSTANCE_UID, "UI", uid)
    assert own is not None  # a UI value is raw text
    # The group length follows from the UID's length (padded to even) alone.
    padded = len(uid) + (len(uid) & 1)
    length = known[2].get(padded)
    if length is None:
        meta = _without_group_length(elements)
        meta._dict[BaseTag(_MEDIA_SOP_INSTANCE_UID)] = RawDataElement(
            BaseTag(_MEDIA_SOP_INSTANCE_UID), "UI", len(uid), uid, 0, False, True)
        length = known[2][padded] = _group_length_entries(meta)
    return known[1] | own | length


def written_groups(
    meta_entries: frozenset[TagEntry],
    elements: Iterable[tuple[int, str | None, Any]],
    subset: Callable[[Sequence[int]], Dataset],
    creators: dict[int, object] | None = None,
) -> InstanceEntries:
    """:func:`tag_entries` of a data set given as its file meta's entries
    (:func:`file_meta_entries`) and its top-level elements — ``(tag, VR, raw value bytes)``
    or ``(tag, VR, element)`` — without making the data set, in groups: the file meta's
    entries, then one group per element.

    The import's byte path writes most elements unchanged from file to file of a series, so
    their groups are looked up by their bytes and the very same group objects come back for
    every file: that is what lets :func:`~rpacs.review.inventory.add_to_inventory` count a
    batch by group rather than by entry. Only an element not met before is read, from
    ``subset(tags)`` (a data set of just that element and its private creator).

    ``creators`` gives the values of private creators that ``elements`` leave out but
    whose blocks they reach into (when only some of a data set's elements are given).
    """
    parts: list[frozenset[TagEntry]] = [meta_entries]
    creators = dict(creators or {})
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
    return frozenset({TagEntry(name, keyword, vr, kept_text(text, keyword, vr))})


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
        return frozenset({TagEntry(path, kpath, vr, kept_text(_raw_text(raw.value), kpath, vr))})
    element = ds[tag] if isinstance(raw, RawDataElement) else raw
    if vr == "SQ":
        found = {TagEntry(path, kpath, vr, "")}
        for item in element.value or ():  # type: ignore[attr-defined]
            found |= tag_entries(item, path, kpath)
        return frozenset(found)
    text = _value_text(element.value)  # type: ignore[attr-defined]
    return frozenset({TagEntry(path, kpath, vr, kept_text(text, kpath, vr))})
