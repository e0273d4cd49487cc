"""The residual-PHI scan of everything an export writes, before anything leaves.

With ``identity: random`` no research participant ID and no archive UID may appear in any
file (DICOM, JSON sidecar, CSV), nor — unless the spec keeps dates — any of an instance's
archive dates. The review's flags (:func:`rpacs.review.value_flags`) run on every exported
tag as well, against the export's own identifiers and its (shifted) study dates. Values the
spec itself adds (``set``, ``from_sidecar``) are the spec author's decision and are not
flagged. Findings name the file and tag; values are masked.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache

from pydicom import Dataset
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import RawDataElement

from ..deid.encoding import decode_text, effective_vr, split_values, text_codec
from ..review import ReviewContext, value_flags
from .content import Finding

_TEXT_VRS = frozenset({"AE", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "UC", "UI",
                       "UR", "UT"})
_MEMO_ENTRIES = 100_000
_DATE_IN_TEXT = re.compile(r"(?<!\d)(\d{8}|\d{4}-\d{2}-\d{2})(?!\d)")


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

    def id_pattern(self) -> re.Pattern[str] | None:
        if not self.research_ids:
            return None
        alternatives = "|".join(re.escape(r) for r in sorted(self.research_ids, key=len,
                                                             reverse=True))
        return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])")


class InstanceScan:
    """Scans written data sets; per-value verdicts memoised (a series repeats its header)."""

    def __init__(self, rules: ScanRules):
        self.rules = rules
        self._ids = rules.id_pattern()
        self._memo: dict[tuple, list[tuple[str, str]]] = {}
        self._sequences: dict[tuple, list[tuple[str, int, str, str]]] = {}

    def scan(self, ds: Dataset, file: str, instance_uids: Iterable[str],
             instance_dates: Iterable[str]) -> list[Finding]:
        uids = self.rules.archive_uids | frozenset(instance_uids) if self.rules.archive_uids \
            else frozenset()
        dates = frozenset(instance_dates) if self.rules.check_dates else frozenset()
        findings: list[Finding] = []
        for path, tag, vr, value in _values(ds, "", text_codec(ds) or "latin-1",
                                            self._sequences):
            if tag in self.rules.spec_tags and ">" not in path:
                continue
            key = (path, vr, value)
            reasons = self._memo.get(key)
            if reasons is None:
                reasons = self._reasons(path, vr, value)
                if len(self._memo) < _MEMO_ENTRIES:
                    self._memo[key] = reasons
            findings.extend(Finding(file, path, r, mask(v)) for r, v in reasons)
            if vr == "UI" and uids:
                findings.extend(Finding(file, path, "archive UID", mask(v))
                                for v in split_values(value, vr) if v in uids)
            if vr in ("DA", "DT") and dates:
                findings.extend(Finding(file, path, "archive date", mask(v))
                                for v in split_values(value, vr) if v[:8] in dates)
        return findings

    def _reasons(self, path: str, vr: str, value: str) -> list[tuple[str, str]]:
        reasons = []
        if self._ids is not None and vr != "UI":
            match = self._ids.search(value)
            if match:
                reasons.append(("research participant ID", match.group(0)))
        reasons.extend((r, value) for r in value_flags(path, vr, value, self.rules.context))
        return reasons


@cache
def _keyword(number: int) -> str:
    return keyword_for_tag(number) or f"({number >> 16:04X},{number & 0xFFFF:04X})"


def _values(ds: Dataset, prefix: str, codec: str,
            memo: dict[tuple, list[tuple[str, int, str, str]]]
            ) -> list[tuple[str, int, str, str]]:
    """(keyword path, tag, VR, text) of every text value, sequences included; a sequence's
    values memoised by its bytes (converting it is the costly part)."""
    found: list[tuple[str, int, str, str]] = []
    for tag, element in ds._dict.items():
        number = int(tag)
        if number >> 16 == 0x0002:
            continue
        vr = effective_vr(element, number)
        path = f"{prefix}>{_keyword(number)}" if prefix else _keyword(number)
        if vr == "SQ":
            raw = type(element) is RawDataElement and element.value is not None
            key = (path, element.value, codec) if raw else None
            inner = memo.get(key) if key is not None else None
            if inner is None:
                inner = []
                for item in ds[tag].value or ():
                    inner.extend(_values(item, path, text_codec(item, codec) or codec, memo))
                if key is not None and len(memo) < _MEMO_ENTRIES:
                    memo[key] = inner
            found.extend(inner)
            continue
        if vr not in _TEXT_VRS:
            continue
        if type(element) is RawDataElement:
            text = decode_text(element.value, codec).rstrip(" \x00")
        else:
            value = element.value
            text = "" if value is None else "\\".join(map(str, value)) if isinstance(
                value, list | tuple) or type(value).__name__ == "MultiValue" else str(value)
        if text:
            found.append((path, number, vr, text))
    return found


def scan_text(name: str, text: str, rules: ScanRules, dates: frozenset[str]) -> list[Finding]:
    """Findings in a CSV, TSV or JSON file written into the package."""
    ids = rules.id_pattern()
    findings = []
    for where, value in _cells(name, text):
        if ids is not None and (match := ids.search(value)):
            findings.append(Finding(name, where, "research participant ID", mask(match[0])))
        if rules.archive_uids:
            findings.extend(Finding(name, where, "archive UID", mask(token))
                            for token in re.findall(r"[0-9][0-9.]{8,63}", value)
                            if token in rules.archive_uids)
        if dates:
            for token in _DATE_IN_TEXT.findall(value):
                if token.replace("-", "") in dates:
                    findings.append(Finding(name, where, "archive date", mask(token)))
    return findings


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
