"""The export spec: a short YAML file that says what a collaborator gets, validated.

Every problem is reported at once, each naming its key (``identity.pattern: ...``,
``tags[2].replace.pattern: ...``), so a data manager fixes a spec in one go. Built-in specs
(:func:`builtin_spec`) are YAML texts too, so that every export is described, hashed and
audited the same way.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import InvalidInputError
from .enum import DatesMode, Format, IdentityMode, PackageKind, TagAction
from .layout import DEFAULT_LAYOUT, Layout, layout_problems

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Tags the export itself writes (identity and UIDs): no rule may change them.
PROTECTED_KEYWORDS = frozenset({
    "PatientID", "PatientName", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
    "SOPClassUID", "StudyID", "FrameOfReferenceUID", "TransferSyntaxUID",
    # Which bytes mean which letters: the export declares it for the values it writes.
    "SpecificCharacterSet",
})
#: Attributes a viewer cannot show an image without (the Image Pixel module's, and the
#: Modality every series has): no rule may remove or change them.
REQUIRED_KEYWORDS = frozenset({
    "PixelData", "FloatPixelData", "DoubleFloatPixelData", "Rows", "Columns",
    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "SamplesPerPixel",
    "PhotometricInterpretation", "PlanarConfiguration", "NumberOfFrames", "Modality",
})
#: Text VRs whose value is one value, backslashes and all (PS3.5 6.2: VM is always 1).
_SINGLE_VALUE_VRS = frozenset({"LT", "ST", "UT", "UR"})
_KEYS = {"name", "description", "select", "identity", "dates", "tags", "layout", "formats",
         "package", "dicomdir"}
_SELECT_KEYS = {"events", "modalities", "series_description", "participants", "study_uid"}
_IDENTITY_KEYS = {"participant", "pattern", "coupling_list"}
DEFAULT_PATTERN = "EXP{n:04d}"


@dataclass(frozen=True)
class Selection:
    """What to export; every key optional (None: no filter on it)."""

    events: tuple[str, ...] | None = None
    modalities: tuple[str, ...] | None = None
    #: A regular expression searched in the series description (``(?i)`` for any case).
    series_description: str | None = None
    participants: tuple[str, ...] | None = None
    study_uid: str | None = None


@dataclass(frozen=True)
class IdentityRule:
    participant: IdentityMode = IdentityMode.KEEP
    pattern: str = DEFAULT_PATTERN
    coupling_list: bool = True

    @property
    def capacity(self) -> int:
        """How many distinct IDs the pattern has: 10^width of its ``{n:0Wd}`` field."""
        match = re.search(r"\{n:0?(\d+)d\}", self.pattern)
        return 10 ** int(match.group(1)) if match else 10**6


@dataclass(frozen=True)
class TagRule:
    """One rule of ``tags``: an attribute and what is done to it."""

    tag: int
    keyword: str
    action: TagAction
    #: set: the value; from_sidecar: the column; replace: the pattern.
    value: str = ""
    replacement: str = ""


@dataclass(frozen=True)
class ExportSpec:
    name: str
    text: str
    description: str = ""
    select: Selection = field(default_factory=Selection)
    identity: IdentityRule = field(default_factory=IdentityRule)
    dates: DatesMode = DatesMode.KEEP
    tags: tuple[TagRule, ...] = ()
    layout: Layout = field(default_factory=lambda: Layout(DEFAULT_LAYOUT))
    formats: tuple[Format, ...] = (Format.DICOM,)
    package: PackageKind = PackageKind.DIRECTORY
    #: A DICOM folder with a DICOMDIR (files named as PS3.10 wants, not by the layout).
    dicomdir: bool = False

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def random_identity(self) -> bool:
        return self.identity.participant is IdentityMode.RANDOM

    @property
    def sidecar_columns(self) -> tuple[str, ...]:
        """The sidecar columns the spec adds (in the order of its rules, each once)."""
        columns = [r.value for r in self.tags if r.action is TagAction.FROM_SIDECAR]
        return tuple(dict.fromkeys(columns))

    @classmethod
    def from_yaml(cls, text: str, events: Sequence[str] | None = None) -> ExportSpec:
        """Parse and validate; InvalidInputError lists every problem, each naming its key.

        ``events``: the project's, when known, so that an event the project does not have
        is one of the problems rather than an error of its own later.
        """
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidInputError(f"spec is not valid YAML ({exc})") from exc
        if not isinstance(data, dict):
            raise InvalidInputError("spec: must be a mapping (name, select, identity, ...)")
        problems: list[str] = []
        unknown = sorted(map(str, set(data) - _KEYS))
        if unknown:
            problems.append(f"unknown key(s): {', '.join(unknown)} (known: "
                            f"{', '.join(sorted(_KEYS))})")
        name = data.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            problems.append("name: 1-64 letters, digits, '.', '-' or '_', starting with a "
                            "letter or digit (it names the package)")
        description = data.get("description") or ""
        if not isinstance(description, str):
            problems.append("description: must be text")
        select = _selection(data.get("select"), problems)
        unknown_events = sorted(set(select.events or ()) - set(events)) \
            if events is not None else []
        if unknown_events:
            problems.append(f"select.events: {', '.join(unknown_events)} is not an event of "
                            f"the project (one of: {', '.join(events or ())})")
        identity = _identity(data.get("identity"), problems)
        dates = _enum(DatesMode, data.get("dates", "keep"), "dates", problems)
        layout_text = data.get("layout", DEFAULT_LAYOUT)
        problems.extend(layout_problems(layout_text))
        formats = _formats(data.get("formats", ["dicom"]), problems)
        package = _enum(PackageKind, data.get("package", "directory"), "package", problems)
        dicomdir = data.get("dicomdir", False)
        if not isinstance(dicomdir, bool):
            problems.append("dicomdir: must be true or false")
        elif dicomdir and (package is not PackageKind.DIRECTORY or formats != (Format.DICOM,)):
            problems.append("dicomdir: needs package: directory and formats: [dicom]")
        tags = _tag_rules(data.get("tags"), problems)
        if dates is DatesMode.REMOVE and any(
                r.action is TagAction.FROM_SIDECAR and _is_date(r.tag) for r in tags):
            problems.append("tags: a date cannot be added back from the sidecar with "
                            "dates: remove")
        if not problems and Format.NIFTI in formats:
            problems.extend(Layout(layout_text).series_problems())
        if problems:
            raise InvalidInputError(problems)
        return cls(name=name, text=text, description=description.strip(), select=select,
                   identity=identity, dates=dates, tags=tuple(tags), layout=Layout(layout_text),
                   formats=formats, package=package, dicomdir=dicomdir)


#: VRs a rule other than remove can write: text, dates, numbers as text.
_RULE_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST",
                       "TM", "UC", "UR", "UT"})


def value_problem(vr: str, value: str) -> str:
    """What makes ``value`` no valid value of ``vr`` (PS3.5 6.2: form and length, each of
    several values); empty when it is valid. A file written with it would be refused or
    misread by the receiver's software."""
    from pydicom import config
    from pydicom.valuerep import MAX_VALUE_LEN, validate_value

    for part in [value] if vr in _SINGLE_VALUE_VRS else value.split("\\"):
        try:
            validate_value(vr, part, config.RAISE)
        except ValueError:
            limit = MAX_VALUE_LEN.get(vr)
            if limit is not None and len(part) > limit:
                return f"'{part[:20]}…' is {len(part)} characters, more than {vr} allows ({limit})"
            return f"'{part}' is not a valid {vr} value (PS3.5 table 6.2-1)"
    return ""


def _vr_of(tag: int) -> str:
    from pydicom.datadict import dictionary_VR

    if tag >> 16 & 1:  # private: no dictionary knows its VR
        return "UN"
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def _is_date(tag: int) -> bool:
    return _vr_of(tag) in ("DA", "DT")


def _enum(kind: Any, value: Any, key: str, problems: list[str]) -> Any:
    try:
        return kind(value)
    except ValueError:
        problems.append(f"{key}: '{value}' is not one of {', '.join(m.value for m in kind)}")
        return next(iter(kind))


def _texts(value: Any, key: str, problems: list[str]) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        problems.append(f"{key}: must be a list of names")
        return None
    return tuple(str(v) for v in value)


def _regex(value: Any, key: str, problems: list[str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(f"{key}: must be a regular expression (text)")
        return None
    try:
        re.compile(value)
    except re.error as exc:
        problems.append(f"{key}: not a valid regular expression ({exc})")
        return None
    return value


def _selection(data: Any, problems: list[str]) -> Selection:
    if data is None:
        return Selection()
    if not isinstance(data, dict):
        problems.append("select: must be a mapping (events, modalities, series_description, "
                        "participants)")
        return Selection()
    unknown = sorted(map(str, set(data) - _SELECT_KEYS))
    if unknown:
        problems.append(f"select: unknown key(s) {', '.join(unknown)}")
    modalities = _texts(data.get("modalities"), "select.modalities", problems)
    study_uid = data.get("study_uid")
    if study_uid is not None and not isinstance(study_uid, str):
        problems.append("select.study_uid: must be a UID (text)")
    return Selection(
        events=_texts(data.get("events"), "select.events", problems),
        modalities=tuple(m.upper() for m in modalities) if modalities else modalities,
        series_description=_regex(data.get("series_description"),
                                  "select.series_description", problems),
        participants=_texts(data.get("participants"), "select.participants", problems),
        study_uid=study_uid if isinstance(study_uid, str) else None,
    )


def _identity(data: Any, problems: list[str]) -> IdentityRule:
    if data is None:
        return IdentityRule()
    if isinstance(data, str):  # ``identity: random`` is short for ``participant: random``
        data = {"participant": data}
    if not isinstance(data, dict):
        problems.append("identity: must be keep, random or a mapping (participant, pattern, "
                        "coupling_list)")
        return IdentityRule()
    unknown = sorted(map(str, set(data) - _IDENTITY_KEYS))
    if unknown:
        problems.append(f"identity: unknown key(s) {', '.join(unknown)}")
    mode = _enum(IdentityMode, data.get("participant", "keep"), "identity.participant",
                 problems)
    pattern = data.get("pattern", DEFAULT_PATTERN)
    coupling = data.get("coupling_list", True)
    if not isinstance(coupling, bool):
        problems.append("identity.coupling_list: must be true or false")
        coupling = True
    if not isinstance(pattern, str):
        problems.append("identity.pattern: must be text such as 'OSL{n:04d}'")
        pattern = DEFAULT_PATTERN
    else:
        problem = _pattern_problem(pattern)
        if problem:
            problems.append(f"identity.pattern: {problem}")
    return IdentityRule(participant=mode, pattern=pattern, coupling_list=coupling)


def _pattern_problem(pattern: str) -> str | None:
    from .layout import template_fields

    try:
        fields = template_fields(pattern)
    except ValueError as exc:
        return f"not a valid pattern ({exc})"
    if [name for name, _ in fields] != ["n"]:
        return "needs exactly one field {n}, e.g. 'OSL{n:04d}'"
    try:
        sample = pattern.format(n=0)
    except (ValueError, TypeError) as exc:
        return f"the format of {{n}} does not fit a number ({exc})"
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,60}", sample):
        return "IDs must be letters, digits, '-' or '_' (at most 60 characters)"
    return None


def _formats(value: Any, problems: list[str]) -> tuple[Format, ...]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        problems.append("formats: a list of dicom and/or nifti")
        return (Format.DICOM,)
    formats = [_enum(Format, n, "formats", problems) for n in names]
    return tuple(dict.fromkeys(formats))


def _tag_rules(items: Any, problems: list[str]) -> list[TagRule]:
    from pydicom.datadict import keyword_for_tag

    from ..deid import parse_tag

    if items is None:
        return []
    if not isinstance(items, list):
        problems.append("tags: must be a list of rules such as {tag: StationName, remove: true}")
        return []
    rules = []
    actions = {a.value for a in TagAction}
    for index, item in enumerate(items):
        key = f"tags[{index}]"
        if not isinstance(item, dict) or "tag" not in item:
            problems.append(f"{key}: must be a mapping with 'tag' and one action "
                            f"({', '.join(sorted(actions))})")
            continue
        try:
            tag = parse_tag(str(item["tag"]))
        except KeyError:
            problems.append(f"{key}.tag: '{item['tag']}' is neither a keyword nor gggg,eeee")
            continue
        keyword = keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
        if keyword in PROTECTED_KEYWORDS or (tag >> 16) == 0x0002:
            problems.append(f"{key}.tag: {keyword} is written by the export itself "
                            "(identity, UIDs)")
            continue
        given = [k for k in item if k != "tag"]
        if len(given) != 1 or given[0] not in actions:
            problems.append(f"{key}: needs exactly one action of {', '.join(sorted(actions))}")
            continue
        action = TagAction(given[0])
        argument = item[given[0]]
        if keyword in REQUIRED_KEYWORDS:
            problems.append(f"{key}.tag: {keyword} is written as stored: no viewer could "
                            "show the image without it as it is")
            continue
        if action is not TagAction.REMOVE and _vr_of(tag) not in _RULE_VRS:
            problems.append(f"{key}.tag: {keyword} is not a text attribute of the DICOM "
                            f"dictionary; only remove works on it")
            continue
        rule = _tag_rule(tag, keyword, action, argument, f"{key}.{action.value}", problems)
        if rule is not None:
            rules.append(rule)
    return rules


def _tag_rule(tag: int, keyword: str, action: TagAction, argument: Any, key: str,
              problems: list[str]) -> TagRule | None:
    if action in (TagAction.CLEAN, TagAction.REMOVE):
        if argument is not True:
            problems.append(f"{key}: must be true (leave the rule out otherwise)")
            return None
        return TagRule(tag, keyword, action)
    if action is TagAction.SET:
        if not isinstance(argument, str | int | float) or isinstance(argument, bool):
            problems.append(f"{key}: must be a value (text or number)")
            return None
        problem = value_problem(_vr_of(tag), str(argument))
        if problem:
            problems.append(f"{key}: {problem} for {keyword}")
            return None
        return TagRule(tag, keyword, action, value=str(argument))
    if action is TagAction.FROM_SIDECAR:
        if not isinstance(argument, str) or not argument.strip():
            problems.append(f"{key}: must name a column of the sidecar CSV")
            return None
        return TagRule(tag, keyword, action, value=argument.strip())
    if not isinstance(argument, dict) or set(argument) != {"pattern", "with"}:
        problems.append(f"{key}: must be a mapping {{pattern: REGEX, with: TEXT}}")
        return None
    pattern = _regex(argument["pattern"], f"{key}.pattern", problems)
    replacement = argument["with"]
    if not isinstance(replacement, str):
        problems.append(f"{key}.with: must be text")
        return None
    if pattern is None:
        return None
    try:
        re.compile(pattern).sub(replacement, "")
    except (re.error, IndexError) as exc:
        problems.append(f"{key}.with: not a valid replacement ({exc})")
        return None
    return TagRule(tag, keyword, action, value=pattern, replacement=replacement)


#: Unique per instance even for two studies of one event that share series numbers.
_BUILTIN_LAYOUT = ('layout: "{participant}/{event}/{study_date}_{modality}/'
                   '{series_number:03d}_{series_description}/{sop_uid}.dcm"\n')
_BUILTINS = {
    "research-package": """\
name: research-package
description: The whole project with research IDs, a zip per participant
identity: keep
dates: keep
""" + _BUILTIN_LAYOUT + """formats: [dicom]
package: zip-per-participant
""",
    "anonymized-package": """\
name: anonymized-package
description: The whole project with new IDs and no coupling list
identity: {participant: random, pattern: "ANON{n:05d}", coupling_list: false}
dates: shift
""" + _BUILTIN_LAYOUT + """formats: [dicom]
package: zip-per-participant
""",
    "nifti": """\
name: nifti
description: The whole project as NIfTI with JSON sidecars, research IDs
identity: keep
dates: keep
""" + _BUILTIN_LAYOUT + """formats: [nifti]
package: directory
""",
}


def builtin_names() -> list[str]:
    return ["study:<StudyInstanceUID>", *_BUILTINS]


def builtin_spec(name: str) -> ExportSpec | None:
    """A built-in spec by name, or None when ``name`` is not one."""
    if name.startswith("study:"):
        uid = name.removeprefix("study:").strip()
        if not re.fullmatch(r"[0-9.]{1,64}", uid):
            raise InvalidInputError(f"--spec: '{name}' needs a StudyInstanceUID after 'study:'")
        # What a viewer's "export study" gives, without its derived, re-identifiable ID:
        # a new random participant ID that nothing stores. The name (the package's) says
        # nothing of the archive's study UID either.
        text = ("name: study\n"
                "description: One study as a DICOM folder with a DICOMDIR\n"
                f"select: {{study_uid: \"{uid}\"}}\n"
                "identity: {participant: random, pattern: \"STUDY{n:04d}\", "
                "coupling_list: false}\n"
                "dates: keep\nformats: [dicom]\npackage: directory\ndicomdir: true\n")
        return ExportSpec.from_yaml(text)
    text = _BUILTINS.get(name)
    return ExportSpec.from_yaml(text) if text is not None else None


def load_spec(reference: str, events: Sequence[str] | None = None) -> ExportSpec:
    """A built-in spec by name, else the YAML file at ``reference`` (``events``: the
    project's, see :meth:`ExportSpec.from_yaml`)."""
    spec = builtin_spec(reference)
    if spec is not None:
        return spec
    path = Path(reference)
    if not path.is_file():
        raise InvalidInputError(
            f"--spec: '{reference}' is neither a file nor a built-in spec "
            f"({', '.join(builtin_names())})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"--spec: cannot read {path} ({exc})") from exc
    try:
        return ExportSpec.from_yaml(text, events)
    except InvalidInputError as exc:
        raise InvalidInputError([f"{path.name}: {p}" for p in exc.problems]) from exc
