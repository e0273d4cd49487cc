"""The export's changes to one stored instance: identity, UIDs, dates and the spec's rules.

The archive's files are de-identified already; an export only changes what its spec asks
for, with the de-identification's own functions: :func:`~rpacs.deid.uid_for` keyed with the
spec key for every UID the de-identification replaces (:func:`~rpacs.deid.keeps_uid`),
:func:`~rpacs.deid.shift_da`/:func:`~rpacs.deid.shift_dt` for dates, and
:func:`~rpacs.deid.write_instance` to write, so unchanged elements (pixel data above all)
are copied as the bytes they were stored as. Changed values are memoised by their bytes:
the instances of a series share most of their header.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydicom import Dataset
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement, empty_value_for_VR
from pydicom.tag import BaseTag

from ..deid import (
    PlainFile,
    keeps_uid,
    parse_items,
    quiet,  # noqa: F401  (pydicom's value warnings off)
    shift_da,
    shift_dt,
    splice_item,
    study_id_for,
    uid_for,
)
from ..deid.encoding import (
    DEFAULT_REPERTOIRE,
    charset_terms,
    decode_text,
    effective_vr,
    element_text,
    encode_text,
    encoder,
    raw_element,
    split_values,
    text_codec,
    vr_acted_on,
)
from ..deid.raw import BYTES_KEPT
from ..errors import InvalidInputError
from .enum import DatesMode, TagAction
from .layout import ascii_text
from .spec import TagRule

_PATIENT_NAME, _PATIENT_ID, _STUDY_ID = 0x00100010, 0x00100020, 0x00200010
_STUDY_UID, _SOP_UID = 0x0020000D, 0x00080018
_MEDIA_SOP_UID = 0x00020003
#: Text where a research ID could have been typed (it is replaced by the export ID).
_FREE_TEXT_VRS = frozenset({"LO", "SH", "LT", "ST", "UT", "UC", "PN"})
_CHARSET = 0x00080005
#: VRs a rule's value cannot be written in as text (the reference converts them).
_BINARY_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "SQ", "OB", "OW", "UN"})
_MISSING = object()
_ITEM_HEADER = struct.Struct("<HHL").pack
_UNCHANGED = object()
_BINARY = object()
_MEMO_ENTRIES = 50_000
#: Sequences up to this size are memoised by their bytes.
_MEMO_SEQUENCE_BYTES = 1 << 16


def clean_text(text: str) -> str:
    """Trimmed, runs of white space collapsed to one space, ASCII only (transliterated)."""
    return re.sub(r"\s+", " ", ascii_text(text)).strip()


def apply_rules(rules: tuple[TagRule, ...], tag: int, value: str | None,
                sidecar: dict[str, str]) -> str | None:
    """The value of ``tag`` after the spec's rules (None: absent or removed).

    Used for the files and for the plan alike (the layout reads the exported values).
    """
    for rule in rules:
        if rule.tag != tag:
            continue
        if rule.action is TagAction.REMOVE:
            value = None
        elif rule.action is TagAction.SET:
            value = rule.value
        elif rule.action is TagAction.FROM_SIDECAR:
            value = sidecar.get(rule.value, "")
        elif value is not None and rule.action is TagAction.CLEAN:
            value = clean_text(value)
        elif value is not None and rule.action is TagAction.REPLACE:
            value = re.sub(rule.value, rule.replacement, value)
    return value


def exported_text(rules: tuple[TagRule, ...], tag: int, value: str | None,
                  subject: Subject) -> str | None:
    """The text an export writes for ``tag`` whose archive value is ``value``: the research
    ID replaced as a word (:meth:`Rewriter.apply` does so in every text element before the
    rules), then the spec's rules. What the layout's fields and the NIfTI sidecars are made
    of, so that a path or a sidecar never says more than the files do.
    """
    return apply_rules(rules, tag, subject.renamed(value) if value else value,
                       subject.sidecar)


@dataclass(frozen=True)
class Rewrite:
    """What an export changes in every instance; fixed for one run."""

    #: Key of the new UIDs; None keeps the archive's UIDs (identity: keep).
    uid_key: bytes | None
    dates: DatesMode
    date_offset: int
    rules: tuple[TagRule, ...] = ()

    def uid(self, uid: str) -> str:
        return uid_for(self.uid_key, uid) if self.uid_key is not None else uid

    def study_id(self, archive_study_uid: str, archive_study_id: str) -> str:
        if self.uid_key is None:
            return archive_study_id
        return study_id_for(self.uid(archive_study_uid))

    def date(self, value: str) -> str:
        """A DA value as exported."""
        if self.dates is DatesMode.REMOVE:
            return ""
        if self.dates is DatesMode.SHIFT and value:
            return shift_da(value, self.date_offset)
        return value


@dataclass
class Subject:
    """The participant whose instances are being written: research ID → export ID, the
    sidecar values the rules add (dates already moved)."""

    research_id: str
    export_id: str
    sidecar: dict[str, str] = field(default_factory=dict)

    def renamed(self, text: str) -> str:
        """``text`` with the research ID, as a word, replaced by the export ID: what the
        export does to every text element, and so to whatever else quotes one."""
        if self.research_id == self.export_id or self.research_id not in text:
            return text
        return re.sub(rf"(?<![A-Za-z0-9]){re.escape(self.research_id)}(?![A-Za-z0-9])",
                      self.export_id, text)


@dataclass
class Originals:
    """What an instance held before the export changed it: the scan checks for these."""

    uids: set[str] = field(default_factory=set)
    dates: set[str] = field(default_factory=set)


@dataclass
class RawChanges:
    """What :meth:`Rewriter.apply_raw` decided for one file: the changes :meth:`Rewriter.apply`
    would make, as raw elements by tag."""

    #: Changed and added elements.
    overlay: dict[int, RawDataElement]
    #: Elements the rules removed.
    removed: set[int]
    #: Group lengths: kept in the data set, left out by the writer.
    dropped: set[int]
    #: Tags not in the file that the data set gained, in the order it gained them.
    added: list[int]
    originals: Originals
    #: The codec of the top level's text.
    codec: str
    #: The file meta to write.
    meta: dict[BaseTag, RawDataElement]
    #: The VR acted on of each of the file's elements (as read, or the dictionary's).
    vrs: list[str]


#: Layouts whose shared decisions a rewriter keeps (one or two per series in use); the
#: bytes of their files are bounded as the byte path's own layouts are.
_STATIC_KEPT = 16


@dataclass(frozen=True)
class _StaticDecisions:
    """What :meth:`Rewriter.apply_raw` decided for the elements that the files cut from one
    layout share with its file (see :meth:`Rewriter._static_raw`). The layout is kept with
    them, so that its id stays its own."""

    shape: Any
    overlay: dict[int, RawDataElement]
    dropped: frozenset[int]
    uids: frozenset[str]
    dates: frozenset[str]
    #: The VR acted on of every element (their headers are the layout file's).
    vrs: list[str]


def _vrs_of(elements: list[Any]) -> list[str]:
    """The VR acted on of each top-level element: as read, or the dictionary's."""
    return [raw_vr if raw_vr is not None and raw_vr != "UN" else vr_acted_on(raw_vr, number)
            for number, raw_vr, *_ in elements]


class Rewriter:
    """Applies one :class:`Rewrite` to instance after instance (one per worker process)."""

    def __init__(self, rewrite: Rewrite):
        self.rewrite = rewrite
        self._memo: dict[tuple, Any] = {}
        #: (tag, VR, raw value or None, codec, implicit) -> the rules' outcome.
        self._rule_memo: dict[tuple, Any] = {}
        self._memo_subject: str | None = None
        self._rule_tags = frozenset(r.tag for r in rewrite.rules)
        #: :meth:`_static_raw`'s decisions, for the participant of the memo.
        self._static: dict[tuple, _StaticDecisions] = {}

    def _fresh_memo(self, subject: Subject) -> None:
        """Memoised changes hold the participant's export ID: kept for one participant."""
        if self._memo_subject != subject.research_id or len(self._memo) > _MEMO_ENTRIES \
                or len(self._rule_memo) > _MEMO_ENTRIES:
            self._memo = {}
            self._rule_memo = {}
            self._static = {}
            self._memo_subject = subject.research_id

    def apply(self, ds: Dataset, subject: Subject) -> Originals:
        """Change ``ds`` in place; the originals of what changed."""
        self._fresh_memo(subject)
        implicit, little = ds.original_encoding
        if implicit is None or little is None:
            implicit, little = False, True
        originals = Originals()
        codec = text_codec(ds) or "latin-1"
        self._walk(ds, subject, codec, implicit, little, originals)
        self._identity(ds, subject, codec, implicit, little)
        self._rules(ds, subject, codec, implicit, little)
        meta = getattr(ds, "file_meta", None)
        if meta is not None and BaseTag(_SOP_UID) in ds._dict:
            sop = element_text(ds._dict[BaseTag(_SOP_UID)])
            meta._dict[BaseTag(_MEDIA_SOP_UID)] = raw_element(
                _MEDIA_SOP_UID, "UI", encode_text(sop, "UI", "ascii"), False, True)
        return originals

    def apply_raw(self, data: bytes, plain: PlainFile, subject: Subject) -> RawChanges | None:
        """What :meth:`apply` changes in the file ``data`` (cut by
        :func:`~rpacs.deid.parse_plain`), decided on its bytes; None when that needs the
        data set: a sequence whose outcome is not memoised yet (the reference path then
        memoises it for the next instances), a rule that sets a binary value.

        The same questions in the same order, with the same memo: the outcome is exactly
        :meth:`apply`'s (a differential test holds the two together).
        """
        self._fresh_memo(subject)
        implicit = plain.implicit
        elements, index_of = plain.elements, plain.index_of
        i = index_of.get(_CHARSET)
        codec = _codec_of(None if i is None else data[elements[i][3]:elements[i][4]])
        changing = self._changing(subject)
        if plain.changed is None:
            overlay: dict[int, RawDataElement] = {}
            dropped: set[int] = set()
            originals = Originals()
            vrs = _vrs_of(elements)
            if not self._decide_raw(data, elements, vrs, range(len(elements)), subject, codec,
                                    implicit, changing, overlay, dropped, originals):
                return None
        else:
            static = self._static_raw(data, plain, subject, codec, changing)
            if static is None:
                return None
            overlay, dropped = dict(static.overlay), set(static.dropped)
            originals = Originals(set(static.uids), set(static.dates))
            vrs = static.vrs
            if not self._decide_raw(data, elements, vrs, plain.changed, subject, codec,
                                    implicit, changing, overlay, dropped, originals):
                return None
        changes = RawChanges(overlay, set(), dropped, [], originals, codec, dict(plain.meta),
                             vrs)
        self._identity_raw(data, plain, changes, subject)
        if not self._rules_raw(data, plain, changes, subject):
            return None
        sop = _current(data, plain, changes, _SOP_UID)
        if sop is not None:
            changes.meta[BaseTag(_MEDIA_SOP_UID)] = raw_element(
                _MEDIA_SOP_UID, "UI", encode_text(element_text(sop), "UI", "ascii"), False,
                True)
        return changes

    def _decide_raw(self, data: bytes, elements: list[Any], vrs: list[str],
                    positions: Iterable[int], subject: Subject, codec: str, implicit: bool,
                    changing: frozenset[str], overlay: dict[int, RawDataElement],
                    dropped: set[int], originals: Originals) -> bool:
        """:meth:`_walk`'s decisions for the top-level elements at ``positions`` (``vrs``:
        the VR acted on of each, :func:`_vrs_of`), into ``overlay``, ``dropped`` and
        ``originals``; False where they need the data set."""
        for i in positions:
            number, raw_vr, _, start, end = elements[i]
            if not number & 0xFFFF:
                dropped.add(number)  # a group length: not a value apply() would change
                continue
            vr = vrs[i]
            if vr == "SQ":
                if end == start:
                    continue  # no items: nothing to change
                if raw_vr == "UN" or end - start > _MEMO_SEQUENCE_BYTES:
                    return False  # (pydicom reads a UN sequence as implicit VR)
                found = self._sequence_raw(number, data[start:end], subject, codec, implicit)
                if found is _MISSING:
                    return False
                if found is not None:
                    new_element, uids, dates = found
                    overlay[number] = new_element
                    originals.uids |= uids
                    originals.dates |= dates
                continue
            if vr not in changing or end == start:
                continue
            outcome = self._element(number, vr, data[start:end], subject, codec, implicit,
                                    originals)
            if outcome is not None:
                overlay[number] = outcome
        return True

    def _static_raw(self, data: bytes, plain: PlainFile, subject: Subject, codec: str,
                    changing: frozenset[str]) -> _StaticDecisions | None:
        """The decisions for the elements a file cut alike (:attr:`PlainFile.changed`)
        shares with its layout's file, made once per layout, set of changed elements and
        codec: they depend on nothing but their tag, VR and bytes, which are that file's.
        None where they need the data set."""
        shape, changed = plain.shape, plain.changed
        assert shape is not None and changed is not None
        key = (id(shape), changed, codec)
        known = self._static.get(key)
        if known is not None and known.shape is shape:
            return known
        elements = plain.elements
        vrs = _vrs_of(elements)
        unchanged = sorted(set(range(len(elements))).difference(changed))
        overlay: dict[int, RawDataElement] = {}
        dropped: set[int] = set()
        originals = Originals()
        if not self._decide_raw(data, elements, vrs, unchanged, subject, codec,
                                plain.implicit, changing, overlay, dropped, originals):
            return None
        if len(self._static) >= _STATIC_KEPT or sum(
                known.shape.size for known in self._static.values()) > BYTES_KEPT:
            self._static.clear()  # (each holds its layout, and so that file's bytes)
        made = self._static[key] = _StaticDecisions(
            shape, overlay, frozenset(dropped), frozenset(originals.uids),
            frozenset(originals.dates), vrs)
        return made

    def _sequence_raw(self, number: int, value: bytes, subject: Subject, codec: str,
                      implicit: bool) -> Any:
        """:meth:`_sequence`'s memoised outcome for a sequence value — (new element, UIDs,
        dates), or None when nothing changed — from the memo or from its items' bytes;
        _MISSING where the items need the data set (they are not plain)."""
        key = (number, "SQ", value, codec, implicit, True)
        memo = self._memo
        found = memo.get(key, _MISSING)
        if found is not _MISSING:
            return found
        items = parse_items(value, 0, len(value), implicit)
        if items is None:
            return _MISSING
        changing = self._changing(subject)
        inner = Originals()
        walked: list[tuple[list[Any], set[int], dict[int, RawDataElement]]] = []
        for elements in items:
            overlay: dict[int, RawDataElement] = {}
            dropped: set[int] = set()
            for tag, raw_vr, _, start, end in elements:
                if tag >> 16 == 0x0002:
                    # The reference walks it (its originals count) but writes it nowhere.
                    return _MISSING
                if not tag & 0xFFFF:
                    dropped.add(tag)
                    continue
                vr = raw_vr if raw_vr is not None and raw_vr != "UN" else vr_acted_on(raw_vr,
                                                                                      tag)
                if vr == "SQ":
                    if end == start:
                        continue
                    if raw_vr == "UN" or end - start > _MEMO_SEQUENCE_BYTES:
                        return _MISSING
                    nested = self._sequence_raw(tag, value[start:end], subject, codec,
                                                implicit)
                    if nested is _MISSING:
                        return _MISSING
                    if nested is not None:
                        overlay[tag] = nested[0]
                        inner.uids |= nested[1]
                        inner.dates |= nested[2]
                    continue
                if vr not in changing or end == start:
                    continue
                outcome = self._element(tag, vr, value[start:end], subject, codec, implicit,
                                        inner)
                if outcome is not None:
                    overlay[tag] = outcome
            walked.append((elements, dropped, overlay))
        if not any(overlay for _, _, overlay in walked):
            memo[key] = None
            return None
        parts = []
        for elements, dropped, overlay in walked:
            body = splice_item(value, elements, dropped, overlay, implicit)
            parts.append(_ITEM_HEADER(0xFFFE, 0xE000, len(body)))
            parts.append(body)
        found = memo[key] = (raw_element(number, "SQ", b"".join(parts), implicit, True),
                             frozenset(inner.uids), frozenset(inner.dates))
        return found

    def _changing(self, subject: Subject) -> frozenset[str]:
        """The VRs whose values :meth:`_walk` may change for ``subject``."""
        rewrite = self.rewrite
        return frozenset({
            *(("UI",) if rewrite.uid_key is not None else ()),
            *(("DA", "DT") if rewrite.dates is not DatesMode.KEEP else ()),
            *(_FREE_TEXT_VRS if subject.research_id != subject.export_id else ())})

    def _element(self, number: int, vr: str, value: bytes, subject: Subject, codec: str,
                 implicit: bool, originals: Originals) -> RawDataElement | None:
        """One value's change as :meth:`_walk` makes it (None: unchanged), memoised; its
        originals noted."""
        key = (number, vr, value, codec, implicit, True)
        memo = self._memo
        outcome = memo.get(key, key)
        if outcome is key:
            outcome = memo[key] = self._changed(number, vr, value, subject, codec, implicit,
                                                True)
        if outcome is not None:
            if vr == "UI":
                originals.uids.update(split_values(decode_text(value, "latin-1"), vr))
            elif vr in ("DA", "DT"):
                originals.dates.update(v[:8] for v in split_values(
                    decode_text(value, "latin-1"), vr))
        return outcome

    def _identity_raw(self, data: bytes, plain: PlainFile, changes: RawChanges,
                      subject: Subject) -> None:
        """:meth:`_identity` on the file's elements."""
        codec, implicit = changes.codec, plain.implicit
        if subject.research_id != subject.export_id:
            for tag, vr in ((_PATIENT_ID, "LO"), (_PATIENT_NAME, "PN")):
                _put(plain, changes, tag, self._identity_element(
                    tag, vr, subject.export_id, codec, implicit))
        if self.rewrite.uid_key is not None:
            study = _current(data, plain, changes, _STUDY_UID)
            if study is not None:
                _put(plain, changes, _STUDY_ID, self._identity_element(
                    _STUDY_ID, "SH", study_id_for(element_text(study)), codec, implicit))

    def _identity_element(self, tag: int, vr: str, text: str, codec: str,
                          implicit: bool) -> RawDataElement:
        key = ("identity", tag, text, codec, implicit)
        element = self._rule_memo.get(key)
        if element is None:
            element = self._rule_memo[key] = raw_element(tag, vr, encode_text(text, vr, codec),
                                                          implicit, True)
        return element

    def _rules_raw(self, data: bytes, plain: PlainFile, changes: RawChanges,
                   subject: Subject) -> bool:
        """:meth:`_rules` on the file's elements; False where it makes a binary value."""
        codec, implicit = changes.codec, plain.implicit
        memo = self._rule_memo
        for tag in self._rule_tags:
            if not tag & 0xFFFF or tag == _CHARSET:
                return False  # a group length; the codec of what follows
            element = _current(data, plain, changes, tag)
            if element is None:
                key: tuple = (tag, None, None, codec, implicit)
            else:
                key = (tag, effective_vr(element, tag), element.value, codec, implicit)
            outcome = memo.get(key, _MISSING)
            if outcome is _MISSING:
                outcome = memo[key] = self._rule_outcome(tag, element, subject, codec,
                                                         implicit)
            if outcome is _UNCHANGED:
                continue
            if outcome is _BINARY:
                return False
            if outcome is None:
                changes.overlay.pop(tag, None)
                if tag in plain.index_of:
                    changes.removed.add(tag)
                elif tag in changes.added:
                    changes.added.remove(tag)
            else:
                _put(plain, changes, tag, outcome)
        return True

    def _rule_outcome(self, tag: int, element: RawDataElement | None, subject: Subject,
                      codec: str, implicit: bool) -> Any:
        """What :meth:`_rules` does with one raw element (or none): an element, None to
        remove it, or _UNCHANGED or _BINARY."""
        vr = effective_vr(element, tag) if element is not None else dictionary_VR(tag)
        before = None if element is None else decode_text(element.value, codec).rstrip(
            " \x00")
        after = apply_rules(self.rewrite.rules, tag, before, subject.sidecar)
        if after == before:
            return _UNCHANGED
        if after is None:
            return None
        if vr in _BINARY_VRS or not after.isascii():
            return _BINARY  # the reference path writes it (and declares its character set)
        return raw_element(tag, vr, encode_text(after, vr, codec), implicit, True)

    def _walk(self, ds: Dataset, subject: Subject, codec: str, implicit: bool, little: bool,
              originals: Originals) -> bool:
        """Rewrite one level (and the sequences in it); whether anything changed."""
        rewrite = self.rewrite
        map_uids = rewrite.uid_key is not None
        change_dates = rewrite.dates is not DatesMode.KEEP
        replace_id = subject.research_id != subject.export_id
        elements = ds._dict
        changed = False
        for tag in list(elements):
            element = elements[tag]
            number = int(tag)
            vr = element.VR
            if vr is None or vr == "UN" or len(vr) != 2:  # implicit, unknown or ambiguous
                vr = effective_vr(element, number)
            if vr == "SQ":
                changed |= self._sequence(ds, tag, element, subject, codec, implicit, little,
                                          originals)
                continue
            if not ((map_uids and vr == "UI") or (change_dates and vr in ("DA", "DT"))
                    or (replace_id and vr in _FREE_TEXT_VRS)):
                continue
            value = element.value if type(element) is RawDataElement else None
            if type(element) is not RawDataElement:
                text = element_text(element)
                value = encode_text(text, vr, codec) if text else b""
            if not value:
                continue
            key = (number, vr, value, codec, implicit, little)
            memo = self._memo.get(key, key)
            if memo is key:
                memo = self._changed(number, vr, value, subject, codec, implicit, little)
                self._memo[key] = memo
            if memo is not None:
                if vr == "UI":
                    originals.uids.update(split_values(decode_text(value, "latin-1"), vr))
                elif vr in ("DA", "DT"):
                    originals.dates.update(v[:8] for v in split_values(
                        decode_text(value, "latin-1"), vr))
                elements[tag] = memo
                changed = True
        return changed

    def _sequence(self, ds: Dataset, tag: BaseTag, element: Any, subject: Subject, codec: str,
                  implicit: bool, little: bool, originals: Originals) -> bool:
        """A sequence's items rewritten; the outcome memoised by the sequence's bytes.

        Converting a sequence is the costliest step of all (pydicom parses every item), and
        the instances of a series mostly carry the same sequences.
        """
        raw = type(element) is RawDataElement and element.value is not None \
            and len(element.value) <= _MEMO_SEQUENCE_BYTES
        key = (int(tag), "SQ", element.value, codec, implicit, little) if raw else None
        if key is not None:
            found = self._memo.get(key, key)
            if found is None:
                return False
            if found is not key:
                new_element, uids, dates = found
                ds._dict[tag] = new_element
                originals.uids |= uids
                originals.dates |= dates
                return True
        items = ds[tag].value or ()
        inner = Originals()
        changed = False
        for item in items:
            changed |= self._walk(item, subject, text_codec(item, codec) or codec, implicit,
                                  little, inner)
        originals.uids |= inner.uids
        originals.dates |= inner.dates
        if key is None:
            return changed
        if not changed:
            ds._dict[tag] = element  # unchanged: the stored bytes are written back as read
            self._memo[key] = None
            return False
        encoded = encoder(implicit, little).sequence_value(items, codec)
        new_element = raw_element(int(tag), "SQ", encoded, implicit, little)
        self._memo[key] = (new_element, frozenset(inner.uids), frozenset(inner.dates))
        ds._dict[tag] = new_element
        return True

    def _changed(self, number: int, vr: str, value: bytes, subject: Subject, codec: str,
                 implicit: bool, little: bool) -> RawDataElement | None:
        rewrite = self.rewrite
        text = decode_text(value, "latin-1" if vr in ("UI", "DA", "DT") else codec)
        if vr == "UI":
            values = split_values(text, vr)
            new = [v if keeps_uid(number, v) else rewrite.uid(v) for v in values]
        elif vr == "DA":
            values = split_values(text, vr)
            new = ["" if rewrite.dates is DatesMode.REMOVE else shift_da(v, rewrite.date_offset)
                   for v in values]
        elif vr == "DT":
            values = split_values(text, vr)
            new = ["" if rewrite.dates is DatesMode.REMOVE else shift_dt(v, rewrite.date_offset)
                   for v in values]
        else:
            values = [text.rstrip(" \x00")]
            new = [subject.renamed(values[0])]
        if new == values:
            return None
        joined = "\\".join(new) if any(new) else ""
        return raw_element(number, vr, encode_text(joined, vr, codec) if joined else b"",
                           implicit, little)

    def _identity(self, ds: Dataset, subject: Subject, codec: str, implicit: bool,
                  little: bool) -> None:
        elements = ds._dict
        if subject.research_id != subject.export_id:
            for tag, vr in ((_PATIENT_ID, "LO"), (_PATIENT_NAME, "PN")):
                elements[BaseTag(tag)] = raw_element(
                    tag, vr, encode_text(subject.export_id, vr, codec), implicit, little)
        if self.rewrite.uid_key is not None and BaseTag(_STUDY_UID) in elements:
            study_id = study_id_for(element_text(elements[BaseTag(_STUDY_UID)]))
            elements[BaseTag(_STUDY_ID)] = raw_element(
                _STUDY_ID, "SH", encode_text(study_id, "SH", codec), implicit, little)

    def _rules(self, ds: Dataset, subject: Subject, codec: str, implicit: bool,
               little: bool) -> None:
        elements = ds._dict
        written: list[tuple[int, str, str, str]] = []  # (tag, VR, new text, old text)
        for tag in self._rule_tags:
            key = BaseTag(tag)
            element = elements.get(key)
            vr = effective_vr(element, tag) if element is not None else dictionary_VR(tag)
            if element is None:
                before = None
            elif type(element) is RawDataElement:
                before = decode_text(element.value, codec).rstrip(" \x00")
            else:
                before = element_text(element)
            after = apply_rules(self.rewrite.rules, tag, before, subject.sidecar)
            if after == before:
                continue
            if after is None:
                del elements[key]
            elif vr in _BINARY_VRS:
                elements[key] = DataElement(key, vr, after)
            else:
                written.append((tag, vr, after, before or ""))
        codec = self._codec_for(ds, [(tag, text, before) for tag, _, text, before in written],
                                codec, implicit, little)
        for tag, vr, text, _ in written:
            elements[BaseTag(tag)] = raw_element(tag, vr, encode_text(text, vr, codec),
                                                 implicit, little)

    @staticmethod
    def _codec_for(ds: Dataset, written: list[tuple[int, str, str]], codec: str,
                   implicit: bool, little: bool) -> str:
        """The codec the values the rules write (``written``: tag, new text, old text) are
        encoded with; ``codec`` is the one the old texts were read with.

        The data set's, as a rule. When it declares the default repertoire (no Specific
        Character Set, or an empty or ISO_IR 6 one: its text is ASCII) and a value is not
        ASCII, it declares ISO_IR 100 (Latin-1) when that holds every value, else ISO_IR
        192 (UTF-8). A declared set that cannot hold a new character is an error naming
        the attribute and the character, rather than the "?" a writer would put in. A set
        Python has no codec for (ISO 2022 escapes, a misspelt name) was read byte for byte
        as Latin-1: its own characters go back as they came, and only a new non-ASCII one
        is an error. Bytes a set did not decode (kept as surrogates) go back as they were.
        """
        terms = charset_terms(ds._dict.get(BaseTag(_CHARSET)))
        known = text_codec(ds) is not None
        if all(_fits(text, "ascii") for _, text, _ in written):
            return codec
        if all(t in DEFAULT_REPERTOIRE for t in terms):
            texts = [text for _, text, _ in written]
            name, codec = ("ISO_IR 100", "latin-1") \
                if all(_fits(t, "latin-1") for t in texts) else ("ISO_IR 192", "utf-8")
            ds._dict[BaseTag(_CHARSET)] = raw_element(
                _CHARSET, "CS", encode_text(name, "CS", "ascii"), implicit, little)
            return codec
        for tag, text, before in written:
            for character in text:
                if _fits(character, "ascii") or (known and _fits(character, codec)) or (
                        not known and character in before):
                    continue
                name = keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
                raise InvalidInputError(
                    f"tags: {name}: the files declare the character set "
                    f"{chr(92).join(terms)}, which cannot hold the character "
                    f"U+{ord(character):04X} of its new value; write it in ASCII, or with "
                    "clean: true")
        return codec


def _fits(text: str, codec: str) -> bool:
    try:
        text.encode(codec, "surrogateescape")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _current(data: bytes, plain: PlainFile, changes: RawChanges,
             tag: int) -> RawDataElement | None:
    """The element the data set holds under ``tag`` so far: changed, as read, or None."""
    element = changes.overlay.get(tag)
    if element is not None:
        return element
    i = plain.index_of.get(tag)
    if i is None or tag in changes.removed:
        return None
    _, vr, _, start, end = plain.elements[i]
    return raw_element(tag, vr, data[start:end], plain.implicit, True) if end > start \
        else RawDataElement(BaseTag(tag), vr, 0, empty_value_for_VR(vr, raw=True), 0,
                            plain.implicit, True)


def _put(plain: PlainFile, changes: RawChanges, tag: int, element: RawDataElement) -> None:
    """Set ``tag`` as assigning it in the data set would (a new tag goes last)."""
    changes.overlay[tag] = element
    if tag not in plain.index_of and tag not in changes.added:
        changes.added.append(tag)
    changes.removed.discard(tag)


@cache
def _codec_of(charset: bytes | None) -> str:
    """The codec :meth:`Rewriter.apply` reads the top level with, by its Specific Character
    Set's raw value (None: absent)."""
    ds = Dataset()
    if charset is not None:
        ds._dict[BaseTag(_CHARSET)] = RawDataElement(BaseTag(_CHARSET), "CS", len(charset),
                                                     charset, 0, False, True)
    return text_codec(ds) or "latin-1"
