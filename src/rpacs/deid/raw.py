"""De-identification of the common case on the file's bytes, without a pydicom data set.

Most input is a Part 10 file in explicit or implicit VR little endian whose top-level
elements all have defined lengths. For such a file :func:`deidentify_raw` cuts the
elements out of the bytes with :mod:`struct`, asks the :class:`~rpacs.deid.sop.Deidentifier`
the same questions its walk asks (the rule of each tag, the memoised outcome of each
(tag, VR, value)), and writes the result as runs of the input's bytes: an element the
profile keeps — pixel data above all — is never decoded, never even sliced on its own, but
copied with its neighbours as one slice of the input. Only changed elements are encoded.

The output is byte for byte what :func:`~rpacs.deid.io.read_instance`,
:meth:`Deidentifier.deidentify` and :func:`~rpacs.deid.io.write_instance` make of the same
file (the reference path; a differential test holds the two together). Anything unusual —
big endian, deflate, undefined lengths, elements out of order, a character set that needs
pydicom's decoder, a value the engine would convert — returns None, and the caller takes
the reference path, which also gives the proper error for a damaged file.
"""

from __future__ import annotations

import struct
from bisect import bisect_left
from collections.abc import Collection, Container, Iterable, Iterator
from typing import Any, NamedTuple, TypeVar

import numpy as np
from pydicom import Dataset
from pydicom.dataelem import RawDataElement, empty_value_for_VR
from pydicom.dataset import FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from . import quiet  # noqa: F401  (pydicom's value warnings off)
from .clean import _IDENTIFYING_TAGS, TextCleaner
from .encoding import (
    effective_vr,
    element_text,
    encode_text,
    encoder,
    raw_element,
    text_codec,
)
from .io import _PREAMBLE, _REQUIRED, _VRS, _encodings, _file_meta_bytes
from .sop import _KEEP, _MEMO_ENTRIES, _MEMO_VALUE_BYTES, _MISSING, Deidentifier, _Instance

_EXPLICIT_HEADER = struct.Struct("<HH2sH").unpack_from
_IMPLICIT_HEADER = struct.Struct("<HHL").unpack_from
_LENGTH = struct.Struct("<L").unpack_from
_ITEM_HEADER = struct.Struct("<HHL").pack
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR",
                       b"UT"})
_new_raw = tuple.__new__
_STUDY_INSTANCE_UID = 0x0020000D
_CHARSET = 0x00080005
_SOP_CLASS_UID = 0x00080016
#: What the engine derives from an instance before its walk (its TextCleaner, character set
#: and SOP class) depends on these elements only; the instances of a patient share them.
_CONTEXT_TAGS = tuple(dict.fromkeys((*_IDENTIFYING_TAGS, _CHARSET, _SOP_CLASS_UID)))
#: (implicit, the context elements' VRs and values) -> (cleaner, SOP class, codec, encodings).
_CONTEXTS: dict[tuple, tuple[TextCleaner, str, str | None, Any]] = {}
#: Encoded bytes of the engine's shared outcome elements, by identity (holding the element,
#: so that its id stays its own).
_ENCODED: dict[tuple[int, bool], tuple[RawDataElement, bytes]] = {}
_CACHE_ENTRIES = 50_000
_PATIENT_ID = 0x00100020
_SOP_INSTANCE_UID = 0x00080018
_CONTEXT_SET = frozenset(_CONTEXT_TAGS)
_REQUIRED_TAGS = frozenset(tag for tag, _reason in _REQUIRED)
_LONG_VR_NAMES = frozenset(vr.decode() for vr in _LONG_VRS)
#: Values longer than this (pixel data) are not compared byte by byte between the files of
#: a series: they count as changed, and are decided again.
_LARGE_VALUE = 4096

#: One top-level element: (tag, VR as read or None when implicit, header start, value start,
#: value end).
Element = tuple[int, str | None, int, int, int]
#: (input file meta but its instance UID, SOP class, new UID's length) -> the written file
#: meta's bytes before and after the new MediaStorageSOPInstanceUID, and its elements.
_META_TEMPLATES: dict[tuple, tuple] = {}
#: (file meta given to :func:`write_plain` but its instance UID, that UID's length) -> the
#: written file meta's bytes before and after the UID.
_PLAIN_METAS: dict[tuple, tuple] = {}
_UID_HEADER = struct.Struct("<HH2sH").pack
_MEDIA_SOP_INSTANCE = BaseTag(0x00020003)


class _LazyMeta:
    """A written file meta not made yet: a template's elements and the new instance UID."""

    __slots__ = ("elements", "uid")

    def __init__(self, elements: dict[BaseTag, Any], uid: bytes):
        self.elements = elements
        self.uid = uid

    def dataset(self) -> FileMetaDataset:
        meta = FileMetaDataset()
        meta._dict = dict(self.elements)
        meta._dict[BaseTag(0x00020003)] = raw_element(0x00020003, "UI", self.uid, False, True)
        return meta


class RawResult:
    """A de-identified file made on the bytes: :attr:`data`, and its elements on demand."""

    __slots__ = ("_dataset", "_encodings", "_parts", "_patient_id", "alike", "data")

    def __init__(self, data: bytes, parts: tuple[Any, ...], patient_id: RawDataElement | None,
                 encodings: Any):
        self.data = data
        self._parts = parts
        self._patient_id = patient_id
        self._encodings = encodings
        self._dataset: Dataset | None = None
        #: For a file cut from the previous one's layout (:meth:`_Run.like`): that layout,
        #: and the tags decided again for this file. Every other element is written as
        #: it is in every file cut from that layout, which lets a caller reuse what it
        #: made of those elements (the tag inventory does). None for a file walked whole.
        self.alike: tuple[object, frozenset[int]] | None = None

    def original(self) -> Dataset:
        """The input's PatientID as read (raw), for the one thing derived from the original:
        the keyed patient hash. It stays in this process's memory."""
        ds = Dataset()
        if self._patient_id is not None:
            ds._dict[BaseTag(_PATIENT_ID)] = self._patient_id
        ds.set_original_encoding(self._parts[-1], True, self._encodings)
        return ds

    def dataset(self) -> Dataset:
        """The written data set as raw elements (for the index and the tag inventory)."""
        if self._dataset is None:
            meta = self.file_meta
            source, elements, _, removed, overlay, _, implicit = self._parts
            # In the order the reference leaves them: the input's order, changed elements
            # in their place, added ones at the end.
            out: dict[BaseTag, Any] = {}
            raw, new = RawDataElement, _new_raw
            for tag, vr, _, start, end in elements:
                if tag in overlay:
                    out[BaseTag(tag)] = overlay[tag]
                elif tag not in removed:
                    key = BaseTag(tag)
                    value = source[start:end] if end > start else _empty(vr)
                    out[key] = new(raw, (key, vr, end - start, value, start, implicit, True,
                                         True, False))
            for tag, element in overlay.items():
                if tag not in out:
                    out[BaseTag(tag)] = element
            ds = Dataset()
            ds._dict = out
            ds.set_original_encoding(implicit, True, self._encodings)
            ds.file_meta = meta
            self._dataset = ds
        return self._dataset

    def meta_template(self) -> tuple[dict[BaseTag, Any], bytes] | None:
        """(the elements of the series' file meta template, this file's instance UID) when
        the file meta was cut from a template and not made yet: every file of the series
        shares the template's elements, and differs in the UID alone. None otherwise."""
        meta = self._parts[5]
        return (meta.elements, meta.uid) if type(meta) is _LazyMeta else None

    @property
    def file_meta(self) -> FileMetaDataset:
        """The written file meta information."""
        meta = self._parts[5]
        if type(meta) is _LazyMeta:
            meta = meta.dataset()
            self._parts = (*self._parts[:5], meta, self._parts[6])
        return meta

    def written(self) -> Iterator[tuple[int, str | None, Any]]:
        """The written top-level elements in :meth:`dataset`'s order, without making it:
        ``(tag, VR as written, raw value bytes)``, or ``(tag, VR, element)`` for an element
        the engine made in memory (a sequence it walked)."""
        source, elements, _, removed, overlay, _, _ = self._parts
        raw = RawDataElement
        for tag, vr, _, start, end in elements:
            if tag in overlay:
                element = overlay[tag]
                yield tag, element.VR, element.value if type(element) is raw else element
            elif tag not in removed:
                yield tag, vr, source[start:end]
        seen = {element[0] for element in elements}
        for tag, element in overlay.items():
            if tag not in seen:
                yield tag, element.VR, element.value if type(element) is raw else element

    def written_of(self, tags: Iterable[int]) -> Iterator[tuple[int, str | None, Any]]:
        """:meth:`written`'s items for ``tags`` only, in the order given (those not
        written are left out)."""
        source, elements, index_of, removed, overlay, _, _ = self._parts
        raw = RawDataElement
        for tag in tags:
            if tag in overlay:
                element = overlay[tag]
                yield tag, element.VR, element.value if type(element) is raw else element
            elif tag not in removed and (i := index_of.get(tag)) is not None:
                _, vr, _, start, end = elements[i]
                yield tag, vr, source[start:end]

    def creators_of(self, tags: Iterable[int]) -> dict[int, Any]:
        """The written private creators whose blocks the private data elements among
        ``tags`` belong to, as :meth:`written` gives their values."""
        creators: dict[int, Any] = {}
        for tag in tags:
            if tag >> 16 & 1 and tag & 0xFFFF >= 0x0100:
                creator = _creator_tag(tag)
                value = self.raw_value(creator)
                if value is not None:
                    creators[creator] = value[1] if type(value) is tuple else value
        return creators

    def subset(self, tags: Iterable[int]) -> Dataset:
        """The written data set's elements under ``tags`` only (and its character set, but
        no file meta: :meth:`encoding` names the syntax): a few index fields read without
        making the whole data set, nor the file meta, which a series' files share but for
        their UID (:meth:`meta_template`)."""
        source, elements, index_of, removed, overlay, _, implicit = self._parts
        out: dict[BaseTag, Any] = {}
        for tag in (_CHARSET, *tags):
            if tag in overlay:
                out[BaseTag(tag)] = overlay[tag]
            elif tag not in removed and tag in index_of:
                _, vr, _, start, end = elements[index_of[tag]]
                key = BaseTag(tag)
                value = source[start:end] if end > start else _empty(vr)
                out[key] = _new_raw(RawDataElement, (key, vr, end - start, value, start,
                                                     implicit, True, True, False))
        ds = Dataset()
        ds._dict = out
        ds.set_original_encoding(implicit, True, self._encodings)
        return ds

    def raw_value(self, tag: int) -> tuple[str | None, bytes | None] | None:
        """(VR as written, raw value) of a written element, None when there is none; the
        element itself when it is not raw (a sequence the engine walked in place)."""
        source, elements, index_of, removed, overlay, _, _ = self._parts
        if tag in overlay:
            element = overlay[tag]
            return (element.VR, element.value) if type(element) is RawDataElement else element
        i = index_of.get(tag)
        if tag in removed or i is None:
            return None
        _, vr, _, start, end = elements[i]
        return vr, source[start:end]

    def encoding(self) -> tuple[bool, Any, str]:
        """What reading the written values depends on: implicit VR, the character set as
        written, the transfer syntax."""
        meta = self._parts[5]  # the template's elements serve: the syntax is among them
        elements = meta.elements if type(meta) is _LazyMeta else meta._dict
        charset = self.raw_value(_CHARSET)
        if charset is not None and type(charset) is not tuple:
            charset = ("converted", element_text(charset))
        return self._parts[6], charset, element_text(elements.get(BaseTag(0x00020010)))

    def text(self, tag: int) -> str:
        """A short text value of the written data set (a UID), "" when absent."""
        source, elements, index_of, removed, overlay, _, _ = self._parts
        if tag in overlay:
            return element_text(overlay[tag])
        i = index_of.get(tag)
        if tag in removed or i is None:
            return ""
        _, _, _, start, end = elements[i]
        return source[start:end].decode("latin-1").strip(" \x00")


def _creator_tag(number: int) -> int:
    """The private creator element of private data element ``number``: (gggg,xxyy) ->
    (gggg,00xx)."""
    return (number & 0xFFFF0000) | (number & 0xFFFF) >> 8


def _empty(vr: str | None) -> bytes | None:
    """The raw value pydicom gives an empty element (b"" for text and sequences)."""
    return empty_value_for_VR(vr, raw=True)


def _parse(data: bytes) -> tuple[dict[BaseTag, RawDataElement], bool, list[Element]] | None:
    """(file meta, implicit, top-level elements) of a plain little-endian file; else None.

    Takes exactly the files :func:`~rpacs.deid.io._read_plain` takes, and further only
    those whose elements come in ascending order with zero reserved bytes in their headers,
    so that an unchanged run of elements is written as the very bytes it was read as.
    """
    size = len(data)
    if size < 144 or data[128:132] != b"DICM":
        return None
    meta: dict[BaseTag, RawDataElement] = {}
    position = 132
    while position + 8 <= size:
        group, number, code, length = _EXPLICIT_HEADER(data, position)
        if group != 0x0002:
            break
        vr = _VRS.get(code)
        if vr is None:
            return None
        start = position + 8
        if code in _LONG_VRS:
            if start + 4 > size:
                return None
            length = _LENGTH(data, start)[0]
            start += 4
        end = start + length
        if end > size:
            return None
        tag = BaseTag(group << 16 | number)
        value = data[start:end] if length else _empty(vr)
        meta[tag] = _new_raw(RawDataElement, (tag, vr, length, value, start, False, True, True,
                                              False))
        position = end
    else:
        if position != size:
            return None
    syntax = element_text(meta.get(BaseTag(0x00020010)))
    if syntax == ExplicitVRLittleEndian:
        implicit = False
    elif syntax == ImplicitVRLittleEndian:
        implicit = True
        if position + 6 <= size and data[position + 4:position + 6] in _VRS:
            return None
    else:
        return None
    # No file meta, group length or command group in the data set.
    elements = _elements(data, position, size, implicit, 0x0002FFFF)
    if not elements:
        return None
    return meta, implicit, elements


def _elements(data: bytes, position: int, size: int, implicit: bool,
              previous: int) -> list[Element] | None:
    """The elements from ``position`` to ``size``, all of defined length, in ascending
    order above ``previous``, none an item or delimiter; else None.

    This loop runs once per element of every file: names are bound locally.
    """
    elements: list[Element] = []
    append = elements.append
    vrs, long_vrs = _VRS, _LONG_VRS
    while position < size:
        if position + 8 > size:
            return None
        head = position
        if implicit:
            group, number, length = _IMPLICIT_HEADER(data, position)
            vr = None
            start = position + 8
        else:
            group, number, code, length = _EXPLICIT_HEADER(data, position)
            vr = vrs.get(code)
            if vr is None:
                return None
            start = position + 8
            if code in long_vrs:
                if start + 4 > size or length:  # length here holds the reserved bytes
                    return None
                length = _LENGTH(data, start)[0]
                start += 4
        tag = group << 16 | number
        if tag <= previous or group == 0xFFFE:
            return None
        previous = tag
        position = start + length
        if position > size:  # also an undefined length (0xFFFFFFFF)
            return None
        append((tag, vr, head, start, position))
    return elements


def _items(data: bytes, start: int, end: int, implicit: bool) -> list[list[Element]] | None:
    """The items of a sequence value, each of defined length and plain; else None."""
    items: list[list[Element]] = []
    position = start
    while position < end:
        if position + 8 > end:
            return None
        group, number, length = _IMPLICIT_HEADER(data, position)
        if group != 0xFFFE or number != 0xE000:
            return None
        position += 8
        if position + length > end:  # also an undefined length
            return None
        elements = _elements(data, position, position + length, implicit, -1)
        if elements is None or any(tag == _CHARSET for tag, *_ in elements):
            return None  # an item with its own character set: the engine's way
        items.append(elements)
        position += length
    return items


def deidentify_raw(data: bytes, deidentifier: Deidentifier) -> RawResult | None:
    """De-identify one file on its bytes; None when it needs the reference path.

    None also when anything goes wrong on the way: the reference path then does the same
    work and reports the problem as it always does (a test holds the common cases to this
    path, so that a slip here cannot hide as a slow run).
    """
    layout = deidentifier._layouts.get(len(data))
    if layout is not None:
        shape = layout.shape
        changed = shape.changed(data)
        if changed is not None:
            try:
                result = _Run(data, shape.meta(data), shape.implicit, shape.elements,
                              deidentifier).like(layout, changed)
            except Exception:
                result = None
            if result is not None:
                return result
    parsed = _parse(data)
    if parsed is None:
        return None
    meta_elements, implicit, elements = parsed
    try:
        return _Run(data, meta_elements, implicit, elements, deidentifier).result()
    except Exception:
        return None


#: :attr:`_Shape.owner` of a byte that may differ between files laid out alike (preamble,
#: the instance's own UID in the file meta), and of one that may not (headers, DICM, the
#: rest of the file meta).
_FREE = -1
_FIXED = -2


class _Shape:
    """Where a file's elements lie, to tell whether another file lies out alike.

    The files of a series mostly lie out alike — the same elements, of the same lengths,
    at the same places — and differ in the values of a few (their UIDs, numbers,
    positions, times). :meth:`changed` finds those few by comparing the two files' bytes
    with numpy, and checks that no element header differs (then every element lies where
    it lies here, by induction over the lengths), nor the file meta beyond the instance's
    own UID. Pixel data and other large values are not compared: such an element always
    counts as changed.
    """

    __slots__ = ("array", "data", "elements", "implicit", "index_of", "meta_layout", "owner",
                 "region", "size", "tail")

    def __init__(self, data: bytes, meta: dict[BaseTag, RawDataElement], implicit: bool,
                 elements: list[Element], index_of: dict[int, int]):
        self.data = data
        self.size = len(data)
        self.implicit = implicit
        self.elements = elements
        self.index_of = index_of
        self.meta_layout = tuple(
            (tag, element.VR, element.value_tell, element.value_tell + element.length)
            for tag, element in meta.items())
        # Bytes compared: up to the value of the first large element. That one and any
        # after it count as changed (their headers are compared one by one).
        large = next((i for i, e in enumerate(elements) if e[4] - e[3] > _LARGE_VALUE),
                     len(elements))
        self.region = elements[large][3] if large < len(elements) else len(data)
        self.tail = tuple(range(large, len(elements)))
        self.array = np.frombuffer(data, np.uint8, self.region)
        # What each compared byte is: a value byte of element i is i; a byte that may
        # differ unseen (the preamble, which is never read, and the instance's own UID in
        # the file meta) is _FREE; any other (DICM, a header, the rest of the file meta) is
        # _FIXED: a difference there means the file lies out otherwise.
        owner = np.full(self.region, _FIXED, dtype=np.int32)
        owner[:128] = _FREE
        for tag, _, start, end in self.meta_layout:
            if tag == 0x00020003:
                owner[start:end] = _FREE
        for i, (_, _, _, start, end) in enumerate(elements[:large]):
            owner[start:end] = i
        self.owner = owner

    def changed(self, data: bytes) -> list[int] | None:
        """Positions in :attr:`elements` of the elements whose values differ in ``data``;
        None when ``data`` is not laid out alike."""
        if len(data) != self.size:
            return None
        owners = self.owner[np.flatnonzero(
            np.frombuffer(data, np.uint8, self.region) != self.array)]
        if owners.size and owners.min() == _FIXED:
            return None  # DICM, a header or the file meta differs: not laid out alike
        for i in self.tail[1:]:
            head, start = self.elements[i][2], self.elements[i][3]
            if data[head:start] != self.data[head:start]:
                return None
        at = owners[owners >= 0]
        if at.size > 1:
            # In file order, so an element's bytes come together: one position per run.
            at = at[np.concatenate(((True,), at[1:] != at[:-1]))]
        return [*at.tolist(), *self.tail]

    def meta(self, data: bytes) -> dict[BaseTag, RawDataElement]:
        """The file meta of ``data``, laid out alike, as :func:`_parse` reads it."""
        return {tag: _new_raw(RawDataElement, (tag, vr, end - start,
                                               data[start:end] if end > start else _empty(vr),
                                               start, False, True, True, False))
                for tag, vr, start, end in self.meta_layout}


class _Layout:
    """A file's :class:`_Shape` and its walk's decisions, kept for the next file: when that
    lies out alike, it is decided by walking only its changed elements
    (:meth:`_Run.like`), the others keeping these decisions, which depend on nothing but
    their tag, VR and bytes and the context, all unchanged."""

    __slots__ = ("context", "kept_private", "memo_key", "overlay", "removed", "shape",
                 "templates", "top_private")

    def __init__(self, run: _Run, context: tuple[Any, ...], memo_key: tuple,
                 removed: frozenset[int], overlay: dict[int, Any], kept_private: bool):
        self.shape = _Shape(run.data, run.meta, run.implicit, run.elements, run.index_of)
        self.context = context
        self.memo_key = memo_key
        self.removed = removed
        self.overlay = overlay
        self.kept_private = kept_private
        # A private data element the walk kept: it was on the safe list, so private
        # elements were kept whatever the sequences hold.
        self.top_private = any(number >> 16 & 1 and number & 0xFFFF >= 0x1000
                               and number not in removed for number, *_ in run.elements)
        #: The output of the files cut from it, by the tags decided again
        #: (:class:`_Template`): a series' files mostly decide the same few again.
        self.templates: dict[frozenset[int], _Template] = {}


#: Templates kept per layout: one or two in use for a series.
_TEMPLATES_KEPT = 8


class _Template:
    """The output of the files cut from one layout that decide the same tags again, as
    :func:`_splice_changes` would write it: the bytes every such file writes alike, made
    once, between the holes each file fills with its own elements of those tags.

    Every other element lies where it lies in the layout's file, with the same bytes and
    the same decision (see :class:`_Layout`): its output is the layout file's. A file's
    pixels are its own: large values (pixel data above all) are always holes, since
    :class:`_Shape` never compares them, and a small value that differs is a changed
    element, so a hole too.
    """

    __slots__ = ("enc", "holes", "segments")

    def __init__(self, layout: _Layout, again: frozenset[int], implicit: bool):
        shape = layout.shape
        removed, overlay, base = layout.removed, layout.overlay, shape.data
        self.enc = enc = encoder(implicit, True)
        #: (tag, its position in the file's elements or -1 when it is added there).
        self.holes: list[tuple[int, int]] = []
        #: The bytes before the first hole, between two holes, after the last.
        self.segments: list[bytes] = []
        run: list[bytes] = []
        inserted = sorted(tag for tag in again if tag not in shape.index_of)
        k = 0

        def hole(tag: int, position: int) -> None:
            self.segments.append(b"".join(run))
            run.clear()
            self.holes.append((tag, position))

        for i, (number, _, head, _, end) in enumerate(shape.elements):
            while k < len(inserted) and inserted[k] < number:
                hole(inserted[k], -1)
                k += 1
            if number in again:
                hole(number, i)
            elif number in overlay:
                run.append(_encoded(enc, number, overlay[number]))
            elif number not in removed:
                run.append(base[head:end])
        for tag in inserted[k:]:
            hole(tag, -1)
        self.segments.append(b"".join(run))

    def fill(self, data: bytes, elements: list[Element], removed: set[int],
             overlay: dict[int, RawDataElement]) -> list[bytes | memoryview]:
        """The output of ``data`` (cut alike: ``elements``) with its ``removed`` and
        ``overlay`` decisions for the holes."""
        view = memoryview(data)
        enc = self.enc
        segments = self.segments
        parts: list[bytes | memoryview] = [segments[0]]
        for (tag, i), after in zip(self.holes, segments[1:], strict=True):
            element = overlay.get(tag)
            if element is not None:
                parts.append(_encoded(enc, tag, element))
            elif i >= 0 and tag not in removed:
                parts.append(view[elements[i][2]:elements[i][4]])
            parts.append(after)
        return parts


T = TypeVar("T")
#: What :func:`keep_by_size` keeps at most: files of so many sizes, and so many bytes of them.
SIZES_KEPT = 8
BYTES_KEPT = 64 * 1024 * 1024


def keep_by_size(kept: dict[int, T], size: int, value: T) -> None:
    """Keep ``value``, which holds a file of ``size`` bytes, as the latest of that size.

    The files of a series come in a few sizes (positions and UIDs written with a digit
    more or less), and a file lies out as an earlier one only if it has the same size:
    one per size is kept, the latest sizes first, at most :data:`SIZES_KEPT` of them and
    :data:`BYTES_KEPT` bytes (the keys are the sizes of the files held).
    """
    kept.pop(size, None)
    while kept and (len(kept) >= SIZES_KEPT or sum(kept) + size > BYTES_KEPT):
        del kept[next(iter(kept))]  # the size seen longest ago
    kept[size] = value


class _Run:
    """One file's pass: the walk of :meth:`Deidentifier._walk` over the top level."""

    def __init__(self, data: bytes, meta: dict[BaseTag, RawDataElement], implicit: bool,
                 elements: list[Element], deidentifier: Deidentifier):
        self.data = data
        self.index_of: dict[int, int] = {}
        self.meta = meta
        self.implicit = implicit
        self.elements = elements
        self.deid = deidentifier
        #: The tags :meth:`_finish` set after the walk (identity, set values, StudyID).
        self._added: frozenset[int] = frozenset()
        #: Of a file cut from a layout: the tags whose elements it decided again, walked
        #: or set after the walk; all others it writes as the layout's file does.
        self._again: frozenset[int] = frozenset()

    def _raw(self, element: Element) -> RawDataElement:
        """The element as the reference reader would have made it."""
        tag, vr, _, start, end = element
        key = BaseTag(tag)
        value = self.data[start:end] if end > start else _empty(vr)
        return _new_raw(RawDataElement, (key, vr, end - start, value, start, self.implicit,
                                         True, True, False))

    def result(self) -> RawResult | None:
        data, elements, deid, implicit = self.data, self.elements, self.deid, self.implicit
        # The context: what the reference reads before its walk, from the same raw elements.
        index_of = self.index_of = {element[0]: i for i, element in enumerate(elements)}
        for tag, _reason in _REQUIRED:
            i = index_of.get(tag)
            if i is None or not data[elements[i][3]:elements[i][4]].strip(b" \x00"):
                return None  # the reference path refuses the file with the reason
        context_key = (implicit, *(
            None if i is None else (elements[i][1], data[elements[i][3]:elements[i][4]])
            for i in map(index_of.get, _CONTEXT_TAGS)))
        found = _CONTEXTS.get(context_key)
        if found is None:
            context = Dataset()
            for tag in _CONTEXT_TAGS:
                i = index_of.get(tag)
                if i is not None:
                    context._dict[BaseTag(tag)] = self._raw(elements[i])
            encodings = _encodings(context._dict.get(BaseTag(_CHARSET)))
            context.set_original_encoding(implicit, True, encodings)
            codec = text_codec(context)
            cleaner = TextCleaner.from_dataset(context)
            sop_class = element_text(context._dict.get(BaseTag(_SOP_CLASS_UID)))
            if len(_CONTEXTS) > 1000:
                _CONTEXTS.clear()
            found = _CONTEXTS[context_key] = (cleaner, sop_class, codec, encodings)
        cleaner, sop_class, codec, encodings = found
        if codec is None:
            return None  # ISO 2022 and the like: pydicom's decoder, the reference path
        plan = deid._plans.get(sop_class)
        if plan is None:
            plan = deid._plans[sop_class] = {}
        memo_key = (cleaner.values, sop_class, implicit, True, codec)
        memo = deid._memos.get(memo_key)
        if memo is None:
            if deid._memo_size > _MEMO_ENTRIES:
                deid._memos.clear()
                deid._memo_size = 0
            memo = deid._memos[memo_key] = {}
        instance = _Instance(cleaner, sop_class, plan, memo, implicit, True)
        before = len(memo)
        removed: set[int] = set()
        overlay: dict[int, Any] = {}
        if not self._walk(elements, instance, codec, plan, memo, removed, overlay):
            return None
        deid._memo_size += len(memo) - before
        walked = (frozenset(removed), dict(overlay), instance.kept_private)
        result = self._finish(instance, codec, encodings, removed, overlay)
        if result is not None:
            layout = _Layout(self, found, memo_key, *walked)
            keep_by_size(deid._layouts, layout.shape.size, layout)
        return result

    def like(self, layout: _Layout, changed: list[int]) -> RawResult | None:
        """:meth:`result` of a file laid out as ``layout``'s, differing from it only in the
        values of the ``changed`` elements: the layout's decisions for the others stand,
        and only these are walked. None when one of them is one the walk cannot decide
        on its own (a private creator, what the context is made of, an empty required
        UID, a sequence where private elements were kept only inside one): the caller
        then takes the whole walk."""
        data, elements, deid = self.data, self.elements, self.deid
        self.index_of = layout.shape.index_of
        cleaner, sop_class, codec, encodings = layout.context
        plan = deid._plans.get(sop_class)
        memo = deid._memos.get(layout.memo_key)
        if plan is None or memo is None:
            return None  # the engine's memos were cleared since: start afresh
        instance = _Instance(cleaner, sop_class, plan, memo, self.implicit, True)
        instance.kept_private = layout.kept_private
        # Whether private elements were kept (DeidentificationMethod says so) may come
        # from inside a sequence; a changed sequence is walked again here only when that
        # cannot change: when the top level keeps private elements anyway, or when
        # nothing kept any (then the changed sequences alone can set it).
        sequences = layout.top_private or not layout.kept_private
        removed = set(layout.removed)
        overlay = dict(layout.overlay)
        vr_cache: dict[tuple[str | None, int], str] = {}
        before = len(memo)
        for i in changed:
            element = elements[i]
            number = element[0]
            if number in _CONTEXT_SET:
                return None
            if number in _REQUIRED_TAGS and not data[element[3]:element[4]].strip(b" \x00"):
                return None
            removed.discard(number)
            overlay.pop(number, None)
            if number >> 16 & 1:
                if number & 0xFFFF < 0x1000:
                    return None  # a private creator: what its whole block is
                # Kept or not by tag and creator alone, as in the layout's walk.
                creator = self.index_of.get(_creator_tag(number))
                text = "" if creator is None else \
                    self._text_at(elements[creator]).strip(" \x00")
                if self._private(element, text, instance, codec, memo, removed, overlay,
                                 sequences) is False:
                    return None
            elif not self._public(element, instance, codec, plan, memo, removed, overlay,
                                  vr_cache, sequences):
                return None
        deid._memo_size += len(memo) - before
        result = self._finish(instance, codec, encodings, removed, overlay,
                              (layout, frozenset(elements[i][0] for i in changed)))
        if result is not None:
            result.alike = (layout, self._again)
        return result

    def _text_at(self, element: Element) -> str:
        return self.data[element[3]:element[4]].decode("latin-1")

    def _finish(self, instance: _Instance, codec: str, encodings: Any, removed: set[int],
                overlay: dict[int, Any],
                like: tuple[_Layout, frozenset[int]] | None = None) -> RawResult | None:
        """The walk's outcome made a file: what deidentify() adds after the walk, the file
        meta, and the output spliced from the input (``like``: the layout the file was
        cut from and the tags of its elements walked again)."""
        data, elements, index_of, implicit = self.data, self.elements, self.index_of, \
            self.implicit
        added = self._tail(instance, codec, removed, overlay)
        if added is None:
            return None
        overlay.update(added)
        self._added = frozenset(tag for tag, _ in added)
        if like is not None:
            self._again = like[1] | self._added
        made = self._file_meta(removed, overlay)
        if made is None:
            return None  # the reference fills it in its own way: leave it to it
        head, meta = made
        if all(type(element) is RawDataElement for element in overlay.values()):
            if like is not None:
                layout, again = like[0], self._again
                template = layout.templates.get(again)
                if template is None:
                    if len(layout.templates) >= _TEMPLATES_KEPT:
                        layout.templates.clear()
                    template = layout.templates[again] = _Template(layout, again, implicit)
                body = template.fill(data, elements, removed, overlay)
            else:
                body = _splice_changes(data, elements, index_of, removed, overlay, implicit)
        else:
            body = self._write(elements, index_of, removed, overlay, codec)
        parts = (data, elements, index_of, removed, overlay, meta, implicit)
        i = index_of.get(_PATIENT_ID)
        return RawResult(b"".join((_PREAMBLE, head, *body)), parts,
                         None if i is None else self._raw(elements[i]), encodings)

    def _file_meta(self, removed: set[int], overlay: dict[int, Any]
                   ) -> tuple[bytes, FileMetaDataset] | None:
        """The written file meta as _write_file_meta and write_instance make it: (its bytes,
        the data set); None when a required element would be empty.

        Only the MediaStorageSOPInstanceUID differs between the files of a series, so the
        bytes are made once per (input meta, SOP class, length of the new UID) and the UID
        spliced in; the data set is made only when asked for (the index reads it).
        """
        sop_class = self._output(_SOP_CLASS_UID, removed, overlay)
        sop_instance = self._output(_SOP_INSTANCE_UID, removed, overlay)
        uid = encode_text(element_text(sop_instance), "UI", "ascii")
        key = (_meta_key(self.meta), None if sop_class is None else sop_class.value, len(uid))
        template = _META_TEMPLATES.get(key) if uid else None
        if template is not None:
            prefix, suffix, elements = template
            return b"".join((prefix, uid, suffix)), _LazyMeta(elements, uid)
        out_ds = Dataset()
        for tag, element in ((_SOP_CLASS_UID, sop_class), (_SOP_INSTANCE_UID, sop_instance)):
            if element is not None:
                out_ds._dict[BaseTag(tag)] = element
        out_ds.file_meta = FileMetaDataset(dict(self.meta))  # the input's stays as read
        self.deid._write_file_meta(out_ds)
        meta = out_ds.file_meta
        for tag in (0x00020002, 0x00020003):
            if not element_text(meta._dict.get(BaseTag(tag))):
                return None
        head = _file_meta_bytes(meta)
        if uid and element_text(
                meta._dict.get(BaseTag(0x00020003))).encode("ascii") == uid.rstrip(b"\x00"):
            _keep_around_uid(_META_TEMPLATES, key, head, uid, dict(meta._dict))
        return head, meta

    def _tail(self, instance: _Instance, codec: str, removed: set[int],
              overlay: dict[int, Any]) -> tuple[tuple[int, RawDataElement], ...] | None:
        """The elements deidentify() adds or replaces after the walk (set values, identity,
        StudyID); None when one of them is not raw. They depend only on which set values
        the walk left and on the study's new UID, so the files of a study share them."""
        deid, index_of = self.deid, self.index_of
        study = self._output(_STUDY_INSTANCE_UID, removed, overlay)
        key = (tuple(n in overlay or (n not in removed and n in index_of)
                     for n, *_ in deid._set_values),
               None if study is None else (study.VR, study.value),
               self.implicit, codec, instance.kept_private)
        try:
            return deid._tails[key]
        except KeyError:
            pass
        except TypeError:  # a study UID the engine made in memory: no key
            key = None
        # On a data set of the elements deidentify() looks at, as it does.
        tail = Dataset()
        for number, *_ in deid._set_values:
            element = self._output(number, removed, overlay)
            if element is not None:
                tail._dict[BaseTag(number)] = element
        if study is not None:
            tail._dict[BaseTag(_STUDY_INSTANCE_UID)] = study
        before = dict(tail._dict)
        deid._add_set_values(tail, instance, codec)
        deid._write_identity(tail, instance, codec)
        changed = [(int(tag), element) for tag, element in tail._dict.items()
                   if before.get(tag) is not element]
        added = (None if any(type(element) is not RawDataElement for _, element in changed)
                 else tuple(changed))
        if key is not None:
            if len(deid._tails) > 1000:
                deid._tails.clear()
            deid._tails[key] = added
        return added

    def _output(self, tag: int, removed: set[int], overlay: dict[int, Any]) -> Any:
        """The element the walk left under ``tag``: changed, kept as read, or None."""
        if tag in overlay:
            return overlay[tag]
        if tag in removed:
            return None
        i = self.index_of.get(tag)
        return None if i is None else self._raw(self.elements[i])

    def _walk(self, elements: list[Element], instance: _Instance, codec: str,
              plan: dict[int, Any], memo: dict[tuple, Any], removed: set[int],
              overlay: dict[int, Any]) -> bool:
        """Decide every element of one level as Deidentifier._walk does; False to give up."""
        creators: list[int] = []
        kept_blocks: set[int] = set()
        block_creators: dict[int, str] = {}
        creator_text: dict[int, str] = {}
        vr_cache: dict[tuple[str | None, int], str] = {}
        for element in elements:
            number = element[0]
            if number >> 16 & 1:
                offset = number & 0xFFFF
                if 0x0010 <= offset <= 0x00FF:
                    creators.append(number)
                    creator_text[number] = self._text_at(element).strip(" \x00")
                    continue
                if offset < 0x0010:
                    removed.add(number)
                    continue
                block = number >> 8
                creator = block_creators.get(block)
                if creator is None:
                    creator = block_creators[block] = creator_text.get(
                        _creator_tag(number), "")
                done = self._private(element, creator, instance, codec, memo, removed,
                                     overlay, True)
                if done is False:
                    return False
                if done:
                    kept_blocks.add(block)
                continue
            if not self._public(element, instance, codec, plan, memo, removed, overlay,
                                vr_cache, True):
                return False
        for number in creators:
            if (number >> 16) << 8 | (number & 0xFF) not in kept_blocks:
                removed.add(number)
        return True

    def _private(self, element: Element, creator: str, instance: _Instance, codec: str,
                 memo: dict[tuple, Any], removed: set[int], overlay: dict[int, Any],
                 sequences: bool) -> bool | None:
        """Decide one private data element of ``creator`` as Deidentifier._walk does: None
        when it is not on the safe list (removed), False to give up (and for a sequence,
        unless ``sequences``), True when kept and cleaned."""
        number, raw_vr, _, start, end = element
        if (creator, number >> 16, number & 0xFF) not in self.deid._safe_private:
            removed.add(number)
            return None
        instance.kept_private = True
        vr = raw_vr if raw_vr and " or " not in raw_vr else "UN"
        if vr == "SQ":
            return sequences and self._sequence(element, "C", instance, codec, removed,
                                                overlay)
        return self._value(number, vr, "C", start, end, instance, codec, memo, removed,
                           overlay)

    def _public(self, element: Element, instance: _Instance, codec: str,
                plan: dict[int, Any], memo: dict[tuple, Any], removed: set[int],
                overlay: dict[int, Any], vr_cache: dict[tuple[str | None, int], str],
                sequences: bool) -> bool:
        """Decide one public element as Deidentifier._walk does; False to give up (and for
        a sequence, unless ``sequences``)."""
        number, raw_vr, _, start, end = element
        if number & 0xFFFF == 0:
            removed.add(number)
            return True
        entry = plan.get(number)
        rule, work = entry if entry is not None else self.deid._rule(
            number, plan, instance.sop_class)
        if rule == "X":
            removed.add(number)
            return True
        vr = raw_vr
        if vr is None or vr == "UN":
            key = (raw_vr, number)
            vr = vr_cache.get(key)
            if vr is None:
                vr = vr_cache[key] = effective_vr(self._raw(element), number)
        if work is not None and vr not in work:
            return True
        if vr == "SQ":
            return sequences and self._sequence(element, rule, instance, codec, removed,
                                                overlay)
        return self._value(number, vr, rule, start, end, instance, codec, memo, removed,
                           overlay)

    def _value(self, number: int, vr: str, rule: Any, start: int, end: int,
               instance: _Instance, codec: str, memo: dict[tuple, Any], removed: set[int],
               overlay: dict[int, Any]) -> bool:
        value = self.data[start:end]
        if end - start <= _MEMO_VALUE_BYTES:
            key = (number, vr, value)
            outcome = memo.get(key, _MISSING)
            if outcome is _MISSING:
                outcome = memo[key] = self.deid._raw_outcome(rule, number, vr, value, instance,
                                                             codec)
        else:
            outcome = self.deid._raw_outcome(rule, number, vr, value, instance, codec)
        if outcome is None:
            removed.add(number)
        elif outcome is not _KEEP:
            if type(outcome) is not RawDataElement:
                return False
            overlay[number] = outcome
        return True

    def _sequence(self, element: Element, rule: Any, instance: _Instance, codec: str,
                  removed: set[int], overlay: dict[int, Any]) -> bool:
        """A sequence's outcome from the engine's memo, or from the engine on its own."""
        number, _, _, start, end = element
        action = getattr(rule, "action", rule)
        if (action not in ("remove", "Z", "empty") and end - start <= _MEMO_VALUE_BYTES
                and end > start):
            found = instance.memo.get((number, "SQ", self.data[start:end]))
            if found is not None:
                outcome, kept_private = found
                overlay[number] = outcome
                instance.kept_private |= kept_private
                return True
        if action not in ("remove", "Z", "empty") and end > start and element[1] != "UN":
            done = self._sequence_bytes(element, instance, codec, overlay)
            if done:
                return True
        holder = Dataset()
        tag = BaseTag(number)
        i = self.index_of.get(_CHARSET)
        if i is not None:
            holder._dict[BaseTag(_CHARSET)] = self._raw(self.elements[i])
        holder._dict[tag] = raw = self._raw(element)
        holder.set_original_encoding(
            self.implicit, True,
            _encodings(holder._dict.get(BaseTag(_CHARSET))))
        self.deid._sequence(holder, tag, number, raw, rule, instance, codec)
        outcome = holder._dict.get(tag)
        if outcome is None:
            removed.add(number)
        elif outcome is not raw:
            # A raw sequence, or one the engine walked in place (not memoised): the writer
            # encodes either kind.
            if type(outcome) is not RawDataElement and outcome.VR != "SQ":
                return False
            overlay[number] = outcome
        return True

    def _sequence_bytes(self, element: Element, instance: _Instance, codec: str,
                        overlay: dict[int, Any]) -> bool:
        """A sequence's items walked and written on the bytes, as Deidentifier._sequence
        does with the items pydicom reads; False (nothing done) when they are not plain."""
        number, _, _, start, end = element
        items = _items(self.data, start, end, self.implicit)
        if items is None:
            return False
        before = instance.kept_private
        instance.kept_private = False
        plan, memo = instance.plan, instance.memo
        parts: list[bytes] = []
        for elements in items:
            removed: set[int] = set()
            changed: dict[int, Any] = {}
            if not self._walk(elements, instance, codec, plan, memo, removed, changed):
                instance.kept_private = before
                return False
            tags = {tag for tag, *_ in elements}  # an item gains no element: nothing added
            body = b"".join(self._write(elements, tags, removed, changed, codec))
            # Items of defined length, as the engine's encoder writes them.
            parts.append(_ITEM_HEADER(0xFFFE, 0xE000, len(body)))
            parts.append(body)
        kept_private = instance.kept_private
        instance.kept_private = before or kept_private
        outcome = raw_element(number, "SQ", b"".join(parts), self.implicit, True)
        if end - start <= _MEMO_VALUE_BYTES:
            memo[(number, "SQ", self.data[start:end])] = (outcome, kept_private)
        overlay[number] = outcome
        return True

    def _write(self, elements: list[Element], index_of: Container[int], removed: set[int],
               overlay: dict[int, Any], codec: str) -> list[bytes | memoryview]:
        """One level's bytes: runs of unchanged input, changed elements encoded."""
        return _splice(self.data, elements, index_of, removed, overlay, codec, self.implicit)


def _splice(data: bytes, elements: list[Element], index_of: Container[int],
            removed: Container[int], overlay: dict[int, Any], codec: str | None,
            implicit: bool) -> list[bytes | memoryview]:
    """One level's bytes as the reference writer lays them out: runs of the input's bytes
    for the unchanged elements, the ``overlay``'s elements encoded in their place (those
    not in ``index_of`` in tag order among them), ``removed`` ones left out.

    The runs are views of ``data``, not copies: the caller joins the parts, and a run
    that holds the pixel data would otherwise be copied twice."""
    enc = encoder(implicit, True)
    data = memoryview(data)  # type: ignore[assignment]

    def encoded(number: int, element: Any) -> bytes:
        if type(element) is not RawDataElement:
            return enc.sequence(number, element.value or (), codec)
        return _encoded(enc, number, element)

    added = sorted(tag for tag in overlay if tag not in index_of)
    parts: list[bytes | memoryview] = []
    run_start = -1
    run_end = -1
    next_added = 0
    for number, _, head, _, end in elements:
        while next_added < len(added) and added[next_added] < number:
            if run_start >= 0:
                parts.append(data[run_start:run_end])
                run_start = -1
            tag = added[next_added]
            parts.append(encoded(tag, overlay[tag]))
            next_added += 1
        if number in removed and number not in overlay:
            if run_start >= 0:
                parts.append(data[run_start:run_end])
                run_start = -1
            continue
        if number in overlay:
            if run_start >= 0:
                parts.append(data[run_start:run_end])
                run_start = -1
            parts.append(encoded(number, overlay[number]))
            continue
        if run_start < 0:
            run_start = head
        run_end = end
    if run_start >= 0:
        parts.append(data[run_start:run_end])
    for tag in added[next_added:]:
        parts.append(encoded(tag, overlay[tag]))
    return parts


class PlainFile(NamedTuple):
    """A file the byte paths take, cut into its file meta and top-level elements."""

    meta: dict[BaseTag, RawDataElement]
    implicit: bool
    #: (tag, VR as read or None when implicit, header start, value start, value end).
    elements: list[Element]
    #: tag -> its position in :attr:`elements`.
    index_of: dict[int, int]
    #: Where its elements lie, for :func:`parse_plain` of the next file of its series.
    shape: _Shape | None = None
    #: Cut from :attr:`shape`'s file (its ``like``): the positions of the elements whose
    #: values differ from that file's — every other lies there with the same bytes. None
    #: when the file was cut afresh.
    changed: tuple[int, ...] | None = None


def parse_plain(data: bytes, like: PlainFile | None = None) -> PlainFile | None:
    """The file cut into elements with :mod:`struct`, when a byte path can take it; else None.

    It can when the file is Part 10 in explicit or implicit VR little endian, its top-level
    elements have defined lengths and come in ascending order (so an unchanged run of them
    is written as the very bytes it was read as), and it carries the UIDs
    :func:`~rpacs.deid.read_instance` requires (without them the reference path gives the
    error). Values are not read: items of sequences are the caller's business.

    ``like``: the previous file of the series, as this returned it. When ``data`` lies out
    alike (see :class:`_Shape`), its elements are known without cutting them again.
    """
    shape = like.shape if like is not None else None
    changed = shape.changed(data) if shape is not None else None
    if changed is not None:
        assert shape is not None
        elements, index_of = shape.elements, shape.index_of
        meta, implicit = shape.meta(data), shape.implicit
    else:
        parsed = _parse(data)
        if parsed is None:
            return None
        meta, implicit, elements = parsed
        index_of = {element[0]: i for i, element in enumerate(elements)}
        shape = _Shape(data, meta, implicit, elements, index_of)
    for tag, _reason in _REQUIRED:
        i = index_of.get(tag)
        if i is None or not data[elements[i][3]:elements[i][4]].strip(b" \x00"):
            return None
    return PlainFile(meta, implicit, elements, index_of, shape,
                     None if changed is None else tuple(changed))


def parse_items(data: bytes, start: int, end: int, implicit: bool) -> list[list[Element]] | None:
    """The items of the sequence value ``data[start:end]``, each cut into its elements as
    :func:`parse_plain` cuts the top level; None unless every item and element has a
    defined length and no item has a Specific Character Set of its own."""
    return _items(data, start, end, implicit)


def splice_item(data: bytes, elements: list[Element], removed: Container[int],
                overlay: dict[int, RawDataElement], implicit: bool) -> bytes:
    """One item of :func:`parse_items` as the reference writer encodes it, with ``removed``
    elements left out and the ``overlay``'s raw elements in place of theirs."""
    tags = {element[0] for element in elements}
    return b"".join(_splice(data, elements, tags, removed, overlay, None, implicit))


def write_plain(data: bytes, plain: PlainFile, removed: Collection[int],
                overlay: dict[int, RawDataElement], meta: dict[BaseTag, RawDataElement]
                ) -> list[bytes | memoryview]:
    """The file ``data`` (cut by :func:`parse_plain`) as :func:`~rpacs.deid.write_instance`
    writes it with ``removed`` elements left out and the ``overlay``'s raw elements changed
    or added: preamble, ``meta`` with its group length, then runs of the input's bytes.

    Given as those runs, in order (views of ``data`` where they are its bytes): a file is
    written with one ``os.writev`` and hashed run by run, and its pixels are never copied
    into a joined file in memory. ``b"".join`` gives the file.

    Group lengths must be among ``removed`` (the writer drops them); ``meta`` is the
    file meta to write, its required elements present.
    """
    head = _plain_meta_bytes(meta)
    if all(type(element) is RawDataElement for element in overlay.values()):
        body = _splice_changes(data, plain.elements, plain.index_of, removed, overlay,
                               plain.implicit)
    else:
        body = _splice(data, plain.elements, plain.index_of, removed, overlay, None,
                       plain.implicit)
    return [_PREAMBLE, head, *body]


def _plain_meta_bytes(meta: dict[BaseTag, RawDataElement]) -> bytes:
    """:func:`~rpacs.deid.io._file_meta_bytes` of ``meta``, which for the files of a series
    differs only in the instance's UID: the bytes around it are written once and kept.

    A pydicom data set per file, only to hand the elements to the writer, cost more than
    the writing.
    """
    uid = meta.get(_MEDIA_SOP_INSTANCE)
    key = None
    if (type(uid) is RawDataElement and uid.VR == "UI" and uid.value
            and len(uid.value) <= 64 and uid.value.strip(b" \x00")
            and all(type(element) is RawDataElement for element in meta.values())):
        key = (_meta_key(meta), len(uid.value))
        template = _PLAIN_METAS.get(key)
        if template is not None:
            return b"".join((template[0], uid.value, template[1]))
    header = Dataset()
    header._dict = dict(meta)
    head = _file_meta_bytes(header)
    if key is not None:
        _keep_around_uid(_PLAIN_METAS, key, head, uid.value)
    return head


def _meta_key(meta: dict[BaseTag, Any]) -> tuple:
    """A file meta's elements but its MediaStorageSOPInstanceUID, as a key."""
    return tuple((int(tag), element.VR, element.value) for tag, element in meta.items()
                 if tag != _MEDIA_SOP_INSTANCE)


def _keep_around_uid(kept: dict[tuple, tuple], key: tuple, head: bytes, uid: bytes,
                     *more: Any) -> None:
    """Keep the written file meta ``head``'s bytes before and after its
    MediaStorageSOPInstanceUID ``uid`` (and ``more``) under ``key``, when that element is
    found exactly once: the files that share ``key`` write the same bytes around their own
    UID of that length."""
    written = _UID_HEADER(0x0002, 0x0003, b"UI", len(uid)) + uid
    if head.count(written) == 1:
        at = head.index(written) + 8
        if len(kept) > 1000:
            kept.clear()
        kept[key] = (head[:at], head[at + len(uid):], *more)


def _splice_changes(data: bytes, elements: list[Element], index_of: dict[int, int],
                    removed: Iterable[int], overlay: dict[int, RawDataElement],
                    implicit: bool) -> list[bytes | memoryview]:
    """:func:`_splice` of one level in steps of its changes rather than of its elements
    (``index_of`` gives an element's position): the elements between two changes are one
    run of the input, as they lie back to back in it (a view of it, as there). All changed
    elements are raw."""
    # (position among the elements, 0: added before it / 1: in its place, tag)
    changes: list[tuple[int, int, int]] = []
    tags: list[int] | None = None
    for tag in overlay:
        i = index_of.get(tag)
        if i is None:
            if tags is None:
                tags = [element[0] for element in elements]
            changes.append((bisect_left(tags, tag), 0, tag))
        else:
            changes.append((i, 1, tag))
    for tag in removed:
        i = index_of.get(tag)
        if i is not None and tag not in overlay:
            changes.append((i, 1, tag))
    changes.sort()
    enc = encoder(implicit, True)
    view = memoryview(data)
    parts: list[bytes | memoryview] = []
    done = 0  # elements before this one are written
    for position, kind, tag in changes:
        if position > done:
            parts.append(view[elements[done][2]:elements[position - 1][4]])
            done = position
        if kind == 1:
            done = position + 1
        element = overlay.get(tag)
        if element is not None:
            parts.append(_encoded(enc, tag, element))
    if done < len(elements):
        parts.append(view[elements[done][2]:elements[-1][4]])
    return parts


def _encoded(enc: Any, number: int, element: RawDataElement) -> bytes:
    """A raw element's header and value, kept by identity: the engines hand out the same
    memoised elements again and again."""
    key = (id(element), enc.implicit)
    known = _ENCODED.get(key)
    if known is not None and known[0] is element:
        return known[1]
    out = enc.raw(number, element)
    if len(_ENCODED) >= _CACHE_ENTRIES:
        _ENCODED.clear()
    _ENCODED[key] = (element, out)
    return out


__all__ = ["PlainFile", "RawResult", "deidentify_raw", "keep_by_size", "parse_items", "parse_plain",
           "splice_item", "write_plain"]
