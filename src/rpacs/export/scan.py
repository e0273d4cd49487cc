"""The residual-PHI scan of everything an export writes, before anything leaves.

With ``identity: random`` no research participant ID and no archive UID may appear in any
file (DICOM, JSON sidecar, CSV), nor — unless the spec keeps dates — any of an instance's
archive dates. The review's flags (:func:`rpacs.review.value_flags`) run on every exported
tag as well, against the export's own identifiers and its (shifted) study dates: text, and
numbers, times and ages (IS, DS, TM, AS) for a value that is not one. Values the spec
itself adds (``set``, ``from_sidecar``) are the spec author's decision as far as those
flags go, never for a research ID, archive UID or archive date. Findings name the file and
tag; values are masked.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

from pydicom import Dataset
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import RawDataElement

from ..deid import (
    parse_items,
    quiet,  # noqa: F401  (pydicom's value warnings off)
)
from ..deid.encoding import (
    decode_text,
    effective_vr,
    split_values,
    text_codec,
    vr_acted_on,
)
from ..review import NUMBER_FORMS, ReviewContext, value_flags
from .content import Finding

_TEXT_VRS = frozenset({"AE", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "UC", "UI",
                       "UR", "UT"})
#: The VRs of a number, a time or an age written as text. Their values are judged only
#: when they are not of that form: text typed where a number belongs (the review's flag).
_NUMBER_VRS = frozenset(NUMBER_FORMS)
#: Those forms on a value's bytes, several values and padding included. Most of a file's
#: numbers are of this form and are passed over before any decoding; the rest are judged
#: as text. ASCII digits only: a value this misses is judged, never passed over. Atomic
#: groups: a long malformed value fails in linear time.
_NUMBER_BYTES = {
    vr: re.compile(rb"(?>%s)?(?:\\(?>%s)?)*+[ \x00]*+" % ((form.pattern.encode(),) * 2))
    for vr, form in NUMBER_FORMS.items()}
#: The VRs of the elements the scan reads: text, numbers written as text, and sequences
#: for the values in them.
SCANNED_VRS = _TEXT_VRS | _NUMBER_VRS | {"SQ"}
_MEMO_ENTRIES = 100_000
_UID_IN_TEXT = re.compile(r"(?<![0-9.])[0-9]+(?:\.[0-9]+){2,}(?![0-9.])")
#: Research IDs shorter than this are not searched for in binary values (pixel data would
#: hold them by chance).
MIN_BYTES_ID = 6
#: A date written into text, as people and systems spell them: year first (20130926,
#: 2013-09-26, 2013.09.26, 2013/09/26) or day first (26.09.2013, 26/09/2013, 26-09-2013,
#: and the American 09/26/2013 read both ways). Two-digit years are not read: too many
#: other numbers look like them.
_DATE_IN_TEXT = re.compile(
    r"(?<!\d)(?<!\d\.)(?:(\d{4})([-./]?)(\d{2})\2(\d{2})|(\d{1,2})([-./])(\d{1,2})\6(\d{4}))"
    r"(?!\d|\.\d)")


def dates_in_text(text: str) -> tuple[str, ...]:
    """The dates ``text`` spells, each as YYYYMMDD (a day-first spelling that could also be
    month-first gives both): what an archive date typed into text is compared as."""
    found: list[str] = []
    for match in _DATE_IN_TEXT.finditer(text):
        year, _, month, day, first, _, second, year2 = match.groups()
        if year is not None:
            candidates = [(year, month, day)]
        else:
            candidates = [(year2, second, first), (year2, first, second)]
        for y, m, d in candidates:
            if 1 <= int(m) <= 12 and 1 <= int(d) <= 31:
                date = f"{y}{int(m):02d}{int(d):02d}"
                if date not in found:
                    found.append(date)
    return tuple(found)


def mask(value: str) -> str:
    """The first two characters and the length: enough to find it, not to leak it."""
    value = value.strip()
    return f"{value[:2]}… ({len(value)} chars)" if value else ""


@dataclass(frozen=True)
class ScanRules:
    """What counts as a finding in one export."""

    #: Research IDs of the project that must not appear (empty with identity: keep).
    research_ids: frozenset[str]
    #: Archive UIDs of the exported studies and series (empty with identity: keep).
    archive_uids: frozenset[str]
    #: Whether archive dates must not appear (dates: shift or remove).
    check_dates: bool
    context: ReviewContext
    #: Tags whose values the spec sets: never flagged.
    spec_tags: frozenset[int] = frozenset()

    @cached_property
    def ids(self) -> re.Pattern[str] | None:
        """The research IDs as one pattern, each a whole word (None with identity: keep)."""
        if not self.research_ids:
            return None
        alternatives = "|".join(re.escape(r) for r in sorted(self.research_ids, key=len,
                                                             reverse=True))
        return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])")

    def _links_back(self, text: str) -> bool:
        """Whether ``text`` holds a research ID or an archive UID."""
        return bool((self.ids is not None and self.ids.search(text))
                    or any(t in self.archive_uids for t in _uid_tokens(text)))

    def identifies(self, keyword: str, vr: str, text: str) -> bool:
        """Whether ``text``, the value of ``keyword``, would be a finding of the scan: a
        research ID or archive UID in it, or a review flag."""
        return self._links_back(text) or bool(value_flags(keyword, vr, text, self.context))

    def masked_path(self, file: str) -> str:
        """``file`` as a report may name it. Layout paths are made of the data (a series
        description is a folder's name), so a component that would be a finding as a
        description is masked: one holding a research ID, an archive UID, a run of digits,
        an e-mail or an address. Zip members (``a.zip!b/c``) are read alike."""
        window = self.context.date_range

        def identifying(name: str) -> bool:
            # The layout's study dates and UIDs are the export's own (shifted, new): as runs
            # of digits they would mask every file's name alike. Other numbers (a birth
            # date typed into a description) still mask the component.
            rest = _LAYOUT_NUMBERS.sub(
                lambda m: "" if m[0].startswith("2.25.") or (
                    window is not None and window[0] <= m[0] <= window[1]) else m[0], name)
            return self._links_back(name) or bool(
                value_flags("SeriesDescription", "LO", rest, self.context))

        return "".join(part if part in ("", "/", "!") or not identifying(part) else mask(part)
                       for part in re.split(r"([/!])", file))


#: What the scan keeps of one value: (keyword path, VR, its values split, reasons found).
Entry = tuple[str, str, tuple[str, ...], tuple[tuple[str, str], ...]]


class InstanceScan:
    """Scans written data sets.

    Each distinct value (by tag path and raw bytes) is decoded and judged once; what an
    instance then costs is a lookup per element. Only the values that matter per instance
    are kept in the memo: those with a finding, and UIDs and dates (checked against the
    instance's own archive values).
    """

    def __init__(self, rules: ScanRules):
        self.rules = rules
        self._ids = rules.ids
        self._memo: dict[tuple, list[Entry]] = {}
        #: Values of a number VR already seen to be of its form (most recur slice after
        #: slice: a set lookup is cheaper than the form's match).
        self._numbers: set[tuple[str, bytes]] = set()
        self._uids = bool(rules.archive_uids)
        self._dates = rules.check_dates

    def scan(self, ds: Dataset, file: str, instance_uids: Iterable[str],
             instance_dates: Iterable[str]) -> list[Finding]:
        return self._findings(self._entries(ds, "", text_codec(ds) or "latin-1"), file,
                              instance_uids, instance_dates)

    def scan_raw(self, elements: Iterable[tuple[int, str, bytes]], codec: str,
                 implicit: bool, file: str, instance_uids: Iterable[str],
                 instance_dates: Iterable[str]) -> list[Finding] | None:
        """:meth:`scan` of a data set's top-level raw elements, given as (tag, VR acted on,
        value) in the data set's order; None when a sequence's items are not plain (see
        :func:`~rpacs.deid.parse_items`): they need the data set."""
        memo, numbers = self._memo, self._numbers
        found: list[Entry] = []
        for number, vr, value in elements:
            if not value:
                continue  # an empty value has nothing to find
            number_form = _NUMBER_BYTES.get(vr)
            if number_form is not None:
                if (vr, value) in numbers:
                    continue
                if number_form.fullmatch(value):
                    if len(numbers) < _MEMO_ENTRIES:
                        numbers.add((vr, value))
                    continue
            elif vr not in _TEXT_VRS and vr != "SQ":
                continue
            entries = memo.get(("", number, vr, value, codec, implicit))
            if entries is None:
                entries = self._raw_entries("", number, vr, value, codec, implicit)
                if entries is None:
                    return None
            if entries:
                found.extend(entries)
        return self._findings(found, file, instance_uids, instance_dates)

    def _raw_entries(self, prefix: str, number: int, vr: str, value: bytes, codec: str,
                     implicit: bool) -> list[Entry] | None:
        """:meth:`_entries` of one raw element, a sequence's items read from its bytes."""
        key = (prefix, number, vr, value, codec, implicit)
        memo = self._memo
        entries = memo.get(key)
        if entries is not None:
            return entries
        path = f"{prefix}>{_keyword(number)}" if prefix else _keyword(number)
        if vr == "SQ":
            items = parse_items(value, 0, len(value), implicit)
            if items is None:
                return None
            entries = []
            for elements in items:
                for tag, raw_vr, _, start, end in elements:
                    if tag >> 16 == 0x0002:
                        continue
                    if raw_vr == "UN" and start < end:
                        return None  # pydicom may read it as a sequence of its own kind
                    item_vr = raw_vr if raw_vr is not None else vr_acted_on(raw_vr, tag)
                    if start == end:
                        continue
                    number_form = _NUMBER_BYTES.get(item_vr)
                    if number_form is not None:
                        if number_form.fullmatch(value, start, end):
                            continue
                    elif item_vr not in _TEXT_VRS and item_vr != "SQ":
                        continue
                    inner = self._raw_entries(path, tag, item_vr, value[start:end], codec,
                                              implicit)
                    if inner is None:
                        return None
                    entries.extend(inner)
        else:
            entries = self._judged(path, number, vr, decode_text(value, codec).rstrip(" \x00"),
                                   prefix)
        if len(memo) < _MEMO_ENTRIES:
            memo[key] = entries
        return entries

    def _findings(self, entries: list[Entry], file: str, instance_uids: Iterable[str],
                  instance_dates: Iterable[str]) -> list[Finding]:
        archive_uids = self.rules.archive_uids
        uids = frozenset(instance_uids) if self._uids else frozenset()
        dates = frozenset(instance_dates) if self._dates else frozenset()
        findings: list[Finding] = []
        for path, vr, values, reasons in entries:
            findings.extend(Finding(file, path, r, mask(v)) for r, v in reasons)
            if vr == "UI" and self._uids:
                findings.extend(Finding(file, path, "archive UID", mask(v))
                                for v in values if v in uids or v in archive_uids)
            elif vr in ("DA", "DT") and dates:
                findings.extend(Finding(file, path, "archive date", mask(v))
                                for v in values if v[:8] in dates)
        return findings

    def scan_bytes(self, data: bytes, file: str, instance_uids: Iterable[str],
                   research_id: str) -> list[Finding]:
        """The written bytes searched for the instance's own archive UIDs and research ID:
        catches them where no element is read as text (private binary values, say)."""
        findings = []
        if self._uids:
            findings += [Finding(file, "(file bytes)", "archive UID", mask(uid))
                         for uid in sorted(_occurring(data, set(instance_uids)))]
        if self._ids is not None and len(research_id) >= MIN_BYTES_ID and \
                research_id.encode() in data:
            findings.append(Finding(file, "(file bytes)", "research participant ID",
                                    mask(research_id)))
        return findings

    def _entries(self, ds: Dataset, prefix: str, codec: str) -> list[Entry]:
        found: list[Entry] = []
        memo = self._memo
        for tag, element in ds._dict.items():
            number = int(tag)
            if number >> 16 == 0x0002:
                continue
            vr = element.VR
            if vr is None or vr == "UN" or len(vr) != 2:  # implicit, unknown or ambiguous
                vr = effective_vr(element, number)
            is_sequence = vr == "SQ"
            if vr not in _TEXT_VRS and not is_sequence and vr not in _NUMBER_VRS:
                continue
            raw = type(element) is RawDataElement and element.value is not None
            key = (prefix, number, vr, element.value, codec, element.is_implicit_VR) \
                if raw else None
            entries = memo.get(key) if key is not None else None
            if entries is None:
                path = f"{prefix}>{_keyword(number)}" if prefix else _keyword(number)
                if is_sequence:
                    entries = []
                    for item in ds[tag].value or ():
                        entries.extend(self._entries(item, path,
                                                     text_codec(item, codec) or codec))
                else:
                    entries = self._judged(path, number, vr, _text(element, codec), prefix)
                if key is not None and len(memo) < _MEMO_ENTRIES:
                    memo[key] = entries
            if entries:
                found.extend(entries)
        return found

    def _judged(self, path: str, number: int, vr: str, text: str, prefix: str) -> list[Entry]:
        if not text:
            return []
        if vr in _NUMBER_VRS and not value_flags(path, vr, text, self.rules.context):
            return []  # a number: nothing of anyone in it (the raw path skips these early)
        reasons: list[tuple[str, str]] = []
        if self._ids is not None and vr != "UI":
            match = self._ids.search(text)
            if match:
                reasons.append(("research participant ID", match.group(0)))
        # What a value the spec itself sets looks like is its author's decision; a research
        # ID, an archive UID or date in it is a leak all the same (a sidecar's column holds
        # whatever its rows hold).
        if not (number in self.rules.spec_tags and not prefix):
            reasons.extend((r, text) for r in value_flags(path, vr, text, self.rules.context))
        entries: list[Entry] = []
        if reasons or (vr == "UI" and self._uids) or (vr in ("DA", "DT") and self._dates):
            entries.append((path, vr, tuple(split_values(text, vr)), tuple(reasons)))
        if self._uids and vr != "UI" and (tokens := _UID_IN_TEXT.findall(text)):
            entries.append((path, "UI", tuple(tokens), ()))  # a UID written into text
        if self._dates and vr not in ("DA", "DT", "UI") and (dates := dates_in_text(text)):
            entries.append((path, "DA", dates, ()))  # a date written into text
        return entries


@cache
def _keyword(number: int) -> str:
    return keyword_for_tag(number) or f"({number >> 16:04X},{number & 0xFFFF:04X})"


def _text(element: Any, codec: str) -> str:
    if type(element) is RawDataElement:
        return decode_text(element.value, codec).rstrip(" \x00")
    value = element.value
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(map(str, value))
    return str(value)


#: A date (YYYYMMDD) or a UID as a layout writes them into a path.
_LAYOUT_NUMBERS = re.compile(r"(?<![\d.])(?:(?:19|20)\d{6}|\d+(?:\.\d+){2,})(?!\d|\.\d)")
#: What scan_text looks for in a value that may be an archive UID (a sentence's full stop
#: after it is not part of it: see :func:`_uid_tokens`).
_UID_TOKEN = re.compile(r"[0-9][0-9.]{8,63}")


def _uid_tokens(text: str) -> list[str]:
    return [token.rstrip(".") for token in _UID_TOKEN.findall(text)]


def scan_text(name: str, text: str, rules: ScanRules, dates: frozenset[str]) -> list[Finding]:
    """Findings in a CSV, TSV or JSON file written into the package. A JSON sidecar's
    fields named like a DICOM text attribute are also judged by the review's flags, as
    the attribute is in the files."""
    ids = rules.ids
    cells = list(_cells(name, text))
    flagged = _sidecar_flags(name, cells, rules) if name.endswith(".json") else []
    # The manifest has a cell per file and column, and almost never a finding: the values
    # are searched once, joined by a NUL (which no pattern matches, and which bounds a
    # match as the end of a value does), and one by one only when that finds something.
    joined = "\0".join(value for _, value in cells)
    if not ((ids is not None and ids.search(joined))
            or (rules.archive_uids and any(
                token in rules.archive_uids for token in _uid_tokens(joined)))
            or (dates and any(date in dates for date in dates_in_text(joined)))):
        return flagged
    findings = flagged
    for where, value in cells:
        if ids is not None and (match := ids.search(value)):
            findings.append(Finding(name, where, "research participant ID", mask(match[0])))
        if rules.archive_uids:
            findings.extend(Finding(name, where, "archive UID", mask(token))
                            for token in _uid_tokens(value)
                            if token in rules.archive_uids)
        if dates:
            findings.extend(Finding(name, where, "archive date", mask(date))
                            for date in dates_in_text(value) if date in dates)
    return findings


def _sidecar_flags(name: str, cells: list[tuple[str, str]], rules: ScanRules
                   ) -> list[Finding]:
    # (where, value, keyword, (tag, VR)) of each field named like a DICOM text attribute.
    fields = [(where, value, keyword, found) for where, value in cells
              if (found := _sidecar_attribute(
                  keyword := where.split("[", 1)[0].rsplit(".", 1)[-1])) is not None]
    # What the spec's author set, also where dcm2niix copied it (ProtocolName from the
    # SeriesDescription a rule set): their decision, as in the files.
    spec_set = {value for _, value, _, (tag, _) in fields if tag in rules.spec_tags}
    return [Finding(name, where, reason, mask(value))
            for where, value, keyword, (_, vr) in fields if value not in spec_set
            for reason in value_flags(keyword, vr, value, rules.context)]


#: VRs of the sidecar fields the review's flags judge: text people may have typed.
_SIDECAR_TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"})


@cache
def _sidecar_attribute(keyword: str) -> tuple[int, str] | None:
    """(tag, VR) of the DICOM text attribute a sidecar field is named like, or None."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        return None
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return None
    return (tag, vr) if vr in _SIDECAR_TEXT_VRS else None


def _cells(name: str, text: str) -> Iterator[tuple[str, str]]:
    if name.endswith(".json"):
        try:
            yield from _json_values(json.loads(text), "")
        except json.JSONDecodeError:
            yield "(text)", text
        return
    if not name.endswith((".csv", ".tsv")):
        for number, line in enumerate(text.splitlines(), start=1):
            yield f"line {number}", line
        return
    delimiter = "\t" if name.endswith(".tsv") else ","
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    header = rows[0] if rows else []
    for number, row in enumerate(rows[1:], start=2):
        for column, cell in zip(header, row, strict=False):
            yield f"line {number}, {column}", cell


def _json_values(data: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _json_values(value, f"{path}.{key}" if path else str(key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _json_values(value, f"{path}[{index}]")
    elif data is not None:
        yield path, str(data)


#: Data longer than this is searched for UIDs by their first characters only (see
#: :func:`_occurring`).
_LONG_DATA = 32 * 1024


def _occurring(data: bytes, uids: set[str]) -> set[str]:
    """The ``uids`` that occur in ``data``: the same answer as ``uid in data`` for each.

    An archive's UIDs share their first characters (``2.25.`` unless the profile kept the
    originals), and so do the UIDs the export wrote. In a whole file, pixels and all, the
    bytes are searched once per distinct 5-character opening rather than once per UID, and
    each place found is compared with the UIDs that open so: a fraction of the passes over
    the pixels. A header alone is short: there each UID's first 16 characters are searched
    for, which the written UIDs almost never share, so that few places need comparing.
    """
    found: set[str] = set()
    width = 5 if len(data) > _LONG_DATA else 16
    by_opening: dict[bytes, list[tuple[str, bytes]]] = {}
    for uid in uids:
        if uid:
            encoded = uid.encode()
            by_opening.setdefault(encoded[:width], []).append((uid, encoded))
    for opening, candidates in by_opening.items():
        at = data.find(opening)
        while at >= 0:
            for uid, encoded in candidates:
                if data.startswith(encoded, at):
                    found.add(uid)
            at = data.find(opening, at + 1)
    return found
