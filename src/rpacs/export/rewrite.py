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
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from pydicom import Dataset
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.tag import BaseTag

from ..deid import keeps_uid, shift_da, shift_dt, study_id_for, uid_for
from ..deid.encoding import (
    decode_text,
    effective_vr,
    element_text,
    encode_text,
    encoder,
    raw_element,
    split_values,
    text_codec,
)
from .enum import DatesMode, TagAction
from .spec import TagRule

_PATIENT_NAME, _PATIENT_ID, _STUDY_ID = 0x00100010, 0x00100020, 0x00200010
_STUDY_UID, _SOP_UID = 0x0020000D, 0x00080018
_MEDIA_SOP_UID = 0x00020003
#: Text where a research ID could have been typed (it is replaced by the export ID).
_FREE_TEXT_VRS = frozenset({"LO", "SH", "LT", "ST", "UT", "UC", "PN"})
_TRANSLITERATE = str.maketrans({"æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "ß": "ss",
                                "đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "þ": "th"})
_MEMO_ENTRIES = 50_000
#: Sequences up to this size are memoised by their bytes.
_MEMO_SEQUENCE_BYTES = 1 << 16


def clean_text(text: str) -> str:
    """Trimmed, runs of white space collapsed to one space, ASCII only (transliterated)."""
    ascii_text = unicodedata.normalize("NFKD", text.translate(_TRANSLITERATE))
    ascii_text = ascii_text.encode("ascii", "ignore").decode("ascii")
    return re.sub(r"\s+", " ", ascii_text).strip()


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


@dataclass
class Originals:
    """What an instance held before the export changed it: the scan checks for these."""

    uids: set[str] = field(default_factory=set)
    dates: set[str] = field(default_factory=set)


class Rewriter:
    """Applies one :class:`Rewrite` to instance after instance (one per worker process)."""

    def __init__(self, rewrite: Rewrite):
        self.rewrite = rewrite
        self._memo: dict[tuple, RawDataElement | None] = {}
        self._memo_subject: str | None = None
        self._rule_tags = frozenset(r.tag for r in rewrite.rules)

    def apply(self, ds: Dataset, subject: Subject) -> Originals:
        """Change ``ds`` in place; the originals of what changed."""
        if self._memo_subject != subject.research_id or len(self._memo) > _MEMO_ENTRIES:
            self._memo = {}
            self._memo_subject = subject.research_id
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
            key = (number, vr, value)
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
            new = [_replace_word(values[0], subject.research_id, subject.export_id)]
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
            elif vr in ("US", "SS", "UL", "SL", "FL", "FD", "SQ", "OB", "OW", "UN"):
                elements[key] = DataElement(key, vr, after)
            else:
                elements[key] = raw_element(tag, vr, encode_text(after, vr, codec),
                                            implicit, little)


def _replace_word(text: str, old: str, new: str) -> str:
    if old not in text:
        return text
    return re.sub(rf"(?<![A-Za-z0-9]){re.escape(old)}(?![A-Za-z0-9])", new, text)
