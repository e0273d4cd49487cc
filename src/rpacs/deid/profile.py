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
from pydicom.datadict import dictionary_VR, tag_for_keyword

from ..errors import InvalidInputError
from . import quiet  # noqa: F401  (pydicom's value warnings off)
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
        options = (set(DEFAULT_OPTIONS) if "options" not in data
                   else _options(_listed(data, "options", problems), problems))
        overrides = _overrides(_listed(data, "tags", problems), problems)
        safe = []
        for index, item in enumerate(_listed(data, "safe_private", problems)):
            try:
                safe.append(SafePrivateElement.from_mapping(item))
            except (KeyError, ValueError, TypeError) as exc:
                problems.append(f"safe_private[{index}]: {exc}")
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


def _listed(data: dict[str, Any], key: str, problems: list[str]) -> list[Any]:
    """``data[key]`` as a list ([] when absent); a problem when it is something else."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"{key}: must be a list")
        return []
    return value


def _options(names: list[Any], problems: list[str]) -> set[Option]:
    options = set()
    for index, name in enumerate(names):
        try:
            option = Option.from_name(str(name))
        except KeyError:
            known = ", ".join(o.yaml_name for o in Option if o.column)
            problems.append(f"options[{index}]: unknown option '{name}' (one of: {known})")
            continue
        if option.column is None:
            # Recording 113101/113102 would claim pixel data was cleaned; rpacs never
            # changes pixel data.
            problems.append(f"options[{index}]: '{option.yaml_name}' is not supported: "
                            "rpacs does not change pixel data")
            continue
        options.add(option)
    return options


#: Elements rpacs writes itself after the profile: an override of them would not hold.
_WRITTEN_BY_RPACS = frozenset({0x00100010, 0x00100020, 0x00080080, 0x00080090, 0x00120062,
                               0x00120063, 0x00120064, 0x00200010, 0x00280303})
_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST",
                       "TM", "UC", "UI", "UR", "UT"})
_MAX_LENGTH = {"AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "DT": 26, "IS": 12, "LO": 64,
               "LT": 10240, "PN": 64, "SH": 16, "ST": 1024, "TM": 14, "UI": 64}
_OVERRIDE_KEYS = {"tag", "action", "value", "pattern"}


def _overrides(items: list[Any], problems: list[str]) -> list[TagOverride]:
    overrides: list[TagOverride] = []
    seen: set[int] = set()
    for index, item in enumerate(items):
        where = f"tags[{index}]"
        if not isinstance(item, dict) or "tag" not in item or "action" not in item:
            problems.append(f"{where}: needs 'tag' and 'action'")
            continue
        extra = set(item) - _OVERRIDE_KEYS
        if extra:
            problems.append(f"{where}: unknown key(s): {', '.join(sorted(map(str, extra)))}")
        try:
            tag = parse_tag(str(item["tag"]))
        except KeyError:
            problems.append(f"{where}.tag: '{item['tag']}' is not a DICOM keyword or tag")
            continue
        name = f"{where}.tag: ({tag >> 16:04X},{tag & 0xFFFF:04X})"
        if tag >> 16 & 1:
            problems.append(f"{name} is private: list it under safe_private instead")
            continue
        if tag >> 16 in (0x0000, 0x0002) or tag in _WRITTEN_BY_RPACS:
            problems.append(f"{name} is written by rpacs itself and cannot be overridden")
            continue
        if tag in seen:
            problems.append(f"{name} has more than one rule")
        seen.add(tag)
        action = str(item["action"])
        if action not in OVERRIDE_ACTIONS:
            problems.append(
                f"{where}.action: '{action}' is not one of {', '.join(OVERRIDE_ACTIONS)}")
            continue
        value, pattern = item.get("value"), item.get("pattern")
        vr = _dictionary_vr(tag)
        if action in ("set", "regex-keep") and vr not in _TEXT_VRS:
            problems.append(f"{where}.action: '{action}' needs a text element, "
                            f"not one of VR {vr}")
        if action == "set":
            if value is None:
                problems.append(f"{where}.value: 'set' needs a value")
            elif len(str(value)) > _MAX_LENGTH.get(vr, 1 << 32):
                problems.append(f"{where}.value: longer than VR {vr} allows "
                                f"({_MAX_LENGTH[vr]} characters)")
        elif value is not None:
            problems.append(f"{where}.value: only 'set' takes a value")
        if action == "regex-keep":
            if not pattern:
                problems.append(f"{where}.pattern: 'regex-keep' needs a pattern")
            else:
                try:
                    re.compile(str(pattern))
                except re.error as exc:
                    problems.append(f"{where}.pattern: not a valid regular expression ({exc})")
        elif pattern is not None:
            problems.append(f"{where}.pattern: only 'regex-keep' takes a pattern")
        overrides.append(TagOverride(tag, action, None if value is None else str(value),
                                     None if pattern is None else str(pattern)))
    return overrides


def _dictionary_vr(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"

