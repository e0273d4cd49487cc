"""Where each exported file goes: the spec's layout template and file names safe everywhere.

A layout is a :meth:`str.format` template of ``/``-separated path components. Every field
value is made safe for file names on Windows, macOS and Linux *before* it is put into the
template, so a value can never add a folder level or escape the package.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

#: Layout fields and whether they are numbers (formatted with ``:03d`` and the like).
FIELDS: dict[str, bool] = {
    "participant": False,
    "event": False,
    "modality": False,
    "study_date": False,
    "study_description": False,
    "series_number": True,
    "series_description": False,
    "series_uid": False,
    "instance_number": True,
    "sop_uid": False,
}
#: Fields that differ between the instances of one series.
INSTANCE_FIELDS = frozenset({"instance_number", "sop_uid"})
SERIES_FIELDS = frozenset({"series_number", "series_description", "series_uid"})
DEFAULT_LAYOUT = ("{participant}/{event}/{modality}/{series_number:03d}_{series_description}/"
                  "{instance_number:05d}.dcm")
#: Characters no file system in use takes in a name (Windows is the strictest).
_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]+')
_RESERVED = re.compile(r"(?i)(CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])(\..*)?")
#: Path components are cut here: 255 bytes is the limit almost everywhere, and some room
#: is left for the suffixes of NIfTI files and for the zip's folder.
MAX_COMPONENT = 100
_SAMPLE: dict[str, Any] = {name: (1 if number else "x") for name, number in FIELDS.items()}


#: Letters that Unicode does not decompose into a base letter and marks, as Scandinavian,
#: German and Polish writers transliterate them.
_TRANSLITERATE = str.maketrans({"æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "ß": "ss",
                                "œ": "oe", "Œ": "OE", "đ": "d", "Đ": "D", "ł": "l",
                                "Ł": "L", "þ": "th", "Þ": "Th"})


def ascii_text(text: str) -> str:
    """``text`` in ASCII, transliterated: Ærø → AEro, Åse → Ase, straße → strasse; what
    has no ASCII form is dropped."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_TRANSLITERATE))
    return decomposed.encode("ascii", "ignore").decode("ascii")


@lru_cache(maxsize=1 << 16)  # a plan names the same participants, events, series often
def safe_name(text: str) -> str:
    """``text`` as one file-name component: ASCII (:func:`ascii_text`), no separators,
    control or reserved characters, no leading or trailing dot or space, not a reserved
    Windows device name, never empty."""
    # Leading dots would hide the file on Linux and macOS; trailing ones Windows drops.
    name = _UNSAFE.sub("_", ascii_text(str(text))).strip(". \t")
    name = re.sub(r"\s+", "_", name)[:MAX_COMPONENT].strip(". ")
    if not name or name in (".", ".."):
        return "_"
    if _RESERVED.fullmatch(name):
        return "_" + name
    return name


def template_fields(template: str) -> list[tuple[str, str]]:
    """(field, format spec) of every replacement field, in order; ValueError if malformed."""
    return [(name, spec or "") for _, name, spec, _ in string.Formatter().parse(template)
            if name is not None]


def layout_problems(template: str, key: str = "layout") -> list[str]:
    """What is wrong with a layout template (empty: nothing)."""
    if not isinstance(template, str) or not template.strip():
        return [f"{key}: a path template is required"]
    try:
        fields = template_fields(template)
    except ValueError as exc:
        return [f"{key}: not a valid template ({exc})"]
    problems = []
    for name, _ in fields:
        if name not in FIELDS:
            problems.append(f"{key}: unknown field {{{name}}} (known: {', '.join(FIELDS)})")
    if problems:
        return problems
    try:
        template.format_map(_SAMPLE)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        return [f"{key}: a field's format does not fit its value ({exc})"]
    parts = template.split("/")
    if template.startswith("/") or any(p in ("", ".", "..") for p in parts):
        problems.append(f"{key}: must be a relative path without empty, '.' or '..' parts")
    if not any(name in INSTANCE_FIELDS for name, _ in template_fields(parts[-1])):
        problems.append(f"{key}: the file name needs {{instance_number}} or {{sop_uid}}, "
                        "or the instances of a series would collide")
    return problems


@dataclass(frozen=True)
class Layout:
    """A validated layout; :meth:`path` fills it with an instance's (safe) values."""

    template: str

    def path(self, values: Mapping[str, Any]) -> str:
        return render(self.template, values)

    @property
    def series_template(self) -> str:
        """Where a series' NIfTI goes: the folder of its instances as a file name, or,
        when that folder is not one per series, ``{series_number:03d}_{series_description}``
        inside it."""
        parts = self.template.split("/")[:-1]
        if parts and any(name in SERIES_FIELDS for name, _ in template_fields(parts[-1])):
            return "/".join(parts)
        return "/".join([*parts, "{series_number:03d}_{series_description}"])

    def series_problems(self, key: str = "layout") -> list[str]:
        """Problems of the layout for per-series output (NIfTI): no instance field in the
        folders."""
        folders = self.template.split("/")[:-1]
        if any(name in INSTANCE_FIELDS for part in folders for name, _ in template_fields(part)):
            return [f"{key}: with nifti the folders cannot use {{instance_number}} or "
                    "{sop_uid} (a series is one file)"]
        return []


def render(template: str, values: Mapping[str, Any]) -> str:
    """The template with safe values; missing numbers are 0 and missing texts ``_``."""
    safe: dict[str, Any] = {}
    for name, number in FIELDS.items():
        value = values.get(name)
        if number:
            safe[name] = value if isinstance(value, int) else 0
        else:
            safe[name] = safe_name(value or "")
    parts = [safe_name(part.format_map(safe)) for part in template.split("/")]
    return "/".join(parts)
