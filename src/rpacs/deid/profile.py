"""De-identification profiles built from PS3.15 Table E.1-1, with per-project overrides.

A project's profile is the Basic profile, the options it switches on, per-tag overrides and
additions to the safe private list. In YAML::

    options: [retain-longitudinal-modified-dates, retain-patient-characteristics,
              clean-descriptors]
    tags:
      - {tag: "(0018,1030)", action: keep}          # keep | remove | empty | set | regex-keep
      - {tag: StationName, action: set, value: SCANNER1}
      - {tag: StudyComments, action: regex-keep, pattern: "\\\\bKONTROLL\\\\b"}
    safe_private:
      - {creator: "SIEMENS MR HEADER", group: "0019", element: "0C"}

``tag`` is a keyword, ``(gggg,eeee)`` or ``gggg,eeee``. ``regex-keep`` keeps only the matches
of ``pattern`` in a free-text value (joined by a space) and drops the rest.

When two options give a row different actions, the more retaining one wins (``K`` over
``C`` over the rest): a user who asks for full dates *and* modified dates gets full dates.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydicom.datadict import tag_for_keyword

from ..errors import InvalidInputError
from .enum import Option
from .private import SafePrivateElement

#: Options of the project default (PRODUCT.md: dates shifted, sex/age/size kept, descriptions
#: cleaned rather than removed).
DEFAULT_OPTIONS = frozenset(
    {
        Option.RETAIN_LONGITUDINAL_MODIFIED_DATES,
        Option.RETAIN_PATIENT_CHARACTERISTICS,
        Option.CLEAN_DESCRIPTORS,
    }
)
OVERRIDE_ACTIONS = ("keep", "remove", "empty", "set", "regex-keep")
_RETENTION_ORDER = {"K": 0, "C": 1}


@dataclass(frozen=True)
class TableRow:
    """One row of Table E.1-1: a tag (or repeating-group pattern) and its codes."""

    tag: str
    name: str
    basic: str
    options: dict[str, str]

    @property
    def is_private_row(self) -> bool:
        """The row "(gggg,eeee) where gggg is odd" that stands for all private elements."""
        return "ODD" in self.tag.upper()

    @property
    def mask_and_value(self) -> tuple[int, int]:
        """(mask, value) such that ``tag & mask == value`` matches this row."""
        digits = self.tag.strip("()").replace(",", "")
        mask = int("".join("0" if c in "xX" else "F" for c in digits), 16)
        value = int("".join("0" if c in "xX" else c for c in digits), 16)
        return mask, value


@cache
def table() -> tuple[TableRow, ...]:
    """The rows of PS3.15 Table E.1-1 shipped in ``_standard``."""
    text = (resources.files(__package__) / "_standard" / "ps3.15-table-e1-1.json").read_text()
    rows = []
    for raw in json.loads(text):
        options = {k: v for k, v in raw.items() if k.endswith("Opt")}
        rows.append(TableRow(raw["tag"], raw["name"], raw["basicProfile"], options))
    return tuple(rows)


@cache
def attribute_types() -> dict[str, Any]:
    text = (resources.files(__package__) / "_standard" / "attribute-types.json").read_text()
    return json.loads(text)


@dataclass(frozen=True)
class TagOverride:
    """A project's own rule for one tag; wins over the table."""

    tag: int
    action: str
    value: str | None = None
    pattern: str | None = None


def parse_tag(text: str) -> int:
    """A tag from ``PatientName``, ``(0010,0010)`` or ``0010,0010``; KeyError if neither."""
    cleaned = text.strip()
    match = re.fullmatch(r"\(?\s*([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{4})\s*\)?", cleaned)
    if match:
        return int(match.group(1) + match.group(2), 16)
    tag = tag_for_keyword(cleaned)
    if tag is None:
        raise KeyError(cleaned)
    return tag


@dataclass(frozen=True)
class Profile:
    """Options, overrides and safe private additions; immutable and cheap to pickle."""

    options: frozenset[Option] = DEFAULT_OPTIONS
    overrides: tuple[TagOverride, ...] = ()
    safe_private: tuple[SafePrivateElement, ...] = field(default=())

    @classmethod
    def default(cls) -> Profile:
        return cls()

    @classmethod
    def basic(cls) -> Profile:
        return cls(options=frozenset())

    def code_for(self, row: TableRow) -> str:
        """The action code of ``row`` under this profile's options."""
        chosen = [row.options[o.column] for o in self.options if o.column in row.options]
        if not chosen:
            return row.basic
        return min(chosen, key=lambda code: _RETENTION_ORDER.get(code, 2))

    @classmethod
    def from_yaml(cls, text: str) -> Profile:
        """Parse and validate a profile; every problem is reported, naming its key."""
        try:
            data = yaml.safe_load(text) if text and text.strip() else {}
        except yaml.YAMLError as exc:
            raise InvalidInputError(f"profile is not valid YAML ({exc})") from exc
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InvalidInputError("profile must be a mapping with options/tags/safe_private")
        problems: list[str] = []
        unknown = set(data) - {"options", "tags", "safe_private"}
        if unknown:
            problems.append(f"unknown key(s): {', '.join(sorted(map(str, unknown)))}")
        options = set(DEFAULT_OPTIONS) if "options" not in data else set()
        for index, name in enumerate(data.get("options") or []):
            try:
                options.add(Option.from_name(str(name)))
            except KeyError:
                names = ", ".join(o.yaml_name for o in Option)
                problems.append(f"options[{index}]: unknown option '{name}' (one of: {names})")
        overrides = []
        for index, item in enumerate(data.get("tags") or []):
            where = f"tags[{index}]"
            if not isinstance(item, dict) or "tag" not in item or "action" not in item:
                problems.append(f"{where}: needs 'tag' and 'action'")
                continue
            try:
                tag = parse_tag(str(item["tag"]))
            except KeyError:
                problems.append(f"{where}.tag: '{item['tag']}' is not a DICOM keyword or tag")
                continue
            action = str(item["action"])
            if action not in OVERRIDE_ACTIONS:
                problems.append(
                    f"{where}.action: '{action}' is not one of {', '.join(OVERRIDE_ACTIONS)}"
                )
                continue
            value = item.get("value")
            pattern = item.get("pattern")
            if action == "set" and value is None:
                problems.append(f"{where}.value: 'set' needs a value")
            if action == "regex-keep":
                try:
                    re.compile(str(pattern or ""))
                    if not pattern:
                        problems.append(f"{where}.pattern: 'regex-keep' needs a pattern")
                except re.error as exc:
                    problems.append(f"{where}.pattern: not a valid regular expression ({exc})")
            overrides.append(
                TagOverride(tag, action, None if value is None else str(value),
                            None if pattern is None else str(pattern))
            )
        safe = []
        for index, item in enumerate(data.get("safe_private") or []):
            where = f"safe_private[{index}]"
            try:
                safe.append(SafePrivateElement.from_mapping(item))
            except (KeyError, ValueError, TypeError) as exc:
                problems.append(f"{where}: {exc}")
        if problems:
            raise InvalidInputError(problems)
        return cls(frozenset(options), tuple(overrides), tuple(safe))

    def to_yaml(self) -> str:
        data: dict[str, Any] = {
            "options": sorted(o.yaml_name for o in self.options),
            "tags": [
                {k: v for k, v in (("tag", f"({o.tag >> 16:04X},{o.tag & 0xFFFF:04X})"),
                                   ("action", o.action), ("value", o.value),
                                   ("pattern", o.pattern)) if v is not None}
                for o in self.overrides
            ],
            "safe_private": [s.as_mapping() for s in self.safe_private],
        }
        return yaml.safe_dump(data, sort_keys=False)
