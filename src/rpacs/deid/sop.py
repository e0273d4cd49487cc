"""The de-identification engine: a :class:`Deidentifier` applies a profile to a dataset.

It walks the dataset once, top level and every sequence item at every depth, and decides
per element from a lookup built once per profile. Elements whose action leaves them as they
are (pixel data above all) are never decoded: pydicom's raw element stays in place and is
written back byte for byte. That is what makes a Python de-identifier fast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from io import BytesIO

from pydicom import Dataset
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_data_element
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID_dictionary

from ..errors import DeidentificationError
from .clean import TextCleaner, value_list
from .dates import shift_da, shift_dt
from .enum import BASIC_PROFILE_CODE, Option
from .private import default_safe_private
from .profile import Profile, TableRow, TagOverride, attribute_types, table
from .uid import study_id_for, uid_for

#: rpacs's implementation class UID (2.25 form of a fixed UUID) written in every file meta.
IMPLEMENTATION_CLASS_UID = "2.25.207368932846379153468432516786470745812"
IMPLEMENTATION_VERSION_NAME = "RPACS_0_1"

_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "CS", "AE", "UR"})
_BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})
_NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT"})
_MAX_LENGTH = {"AE": 16, "CS": 16, "SH": 16, "LO": 64, "ST": 1024, "LT": 10240, "PN": 64,
               "UC": 1 << 31, "UT": 1 << 31, "UR": 1 << 31}
_DUMMY = {"PN": "ANONYMOUS", "DA": "19000101", "DT": "19000101000000", "TM": "000000",
          "AS": "000Y", "IS": "0", "DS": "0", "CS": "ANONYMIZED", "AE": "ANONYMIZED"}
#: File meta elements that name the sending or receiving system.
_META_DROP = (0x00020016, 0x00020017, 0x00020018, 0x00020026, 0x00020027, 0x00020028,
              0x00020100, 0x00020102)
#: Elements rpacs writes itself after the table has run.
_PATIENT_IDENTITY_REMOVED = 0x00120062
_DEID_METHOD = 0x00120063
_DEID_METHOD_CODES = 0x00120064
_LONGITUDINAL_MODIFIED = 0x00280303
_CLASS_UID_TAGS = frozenset({0x00080016, 0x00081150, 0x00020002, 0x00020010, 0x00080062,
                             0x0008001A, 0x00041510, 0x00041512, 0x0040E001})


#: Values up to this size are memoised (headers; never pixel data).
_MEMO_VALUE_BYTES = 1024
_MEMO_ENTRIES = 50_000
_MISSING = object()
_KEEP = object()


@dataclass(frozen=True)
class Identity:
    """What the project writes into every instance of a participant."""

    participant_id: str
    project_acronym: str
    event: str


@dataclass(frozen=True)
class _Rule:
    code: str  # "X", "Z", "D", "K", "C", "U" or a combined code such as "X/Z/D"
    row_tag: str


@cache
def _rules_for(options: frozenset[Option]) -> tuple[dict[int, _Rule], tuple]:
    exact: dict[int, _Rule] = {}
    patterns: list[tuple[int, int, _Rule]] = []
    profile = Profile(options=options)
    for row in table():
        if row.is_private_row:
            continue  # private elements have their own rule: see _private
        rule = _Rule(profile.code_for(row), row.tag)
        if "x" in row.tag.lower():
            mask, value = row.mask_and_value
            patterns.append((mask, value, rule))
        else:
            exact[int(row.tag.strip("()").replace(",", ""), 16)] = rule
    return exact, tuple(patterns)


@cache
def _family_of(sop_class_uid: str) -> str | None:
    for family, uids in attribute_types()["families"].items():
        if sop_class_uid in uids:
            return family
    return None


def _resolve_combined(code: str, row_tag: str, sop_class_uid: str) -> str:
    """Pick X, Z, D or U from a combined code by the attribute's Type in the IOD."""
    if code == "X/Z/U*":
        # Reference sequences are kept with their UIDs mapped, so references still resolve.
        return "U"
    types = attribute_types()["types"].get(row_tag.upper().replace("X", "x"))
    types = types or attribute_types()["types"].get(row_tag)
    attr_type = None
    if types:
        family = _family_of(sop_class_uid)
        attr_type = types.get(family, types["default"]) if family else types["default"]
    letters = code.split("/")
    if attr_type == 1:
        return letters[-1]
    if attr_type == 2:
        return "Z" if "Z" in letters else letters[-1]
    if attr_type == 3:
        return "X"
    return "Z" if "Z" in letters else letters[-1]


def _is_well_known_uid(uid: str) -> bool:
    return uid in UID_dictionary


def _vr_of(raw: RawDataElement | DataElement, tag: int) -> str:
    if raw.VR:
        return raw.VR
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"
    return "OW" if " or " in vr else vr


class Deidentifier:
    """Applies one profile with one project's keys and one participant's identity.

    Build one per import run (and per worker process); :meth:`deidentify` then works on
    dataset after dataset without any per-file set-up beyond the instance's own values.
    """

    def __init__(self, profile: Profile, secret: bytes, identity: Identity,
                 date_offset_days: int):
        self.profile = profile
        self.secret = secret
        self.identity = identity
        self.offset = date_offset_days
        self._exact, self._patterns = _rules_for(profile.options)
        self._overrides: dict[int, TagOverride] = {o.tag: o for o in profile.overrides}
        self._keep_dates = Option.RETAIN_LONGITUDINAL_FULL_DATES in profile.options
        self._shift_dates = not self._keep_dates
        self._safe_private = {s.key for s in (*default_safe_private(), *profile.safe_private)}
        self._method = self._methodvalue_list()
        self._encoded_codes: dict[tuple, RawDataElement] = {}
        # What a raw element became, by (patient's values, SOP class, encoding, tag, VR,
        # bytes): instances of a series repeat most of their header byte for byte, so the
        # work is done once per series rather than once per file. Results are shared between
        # datasets and never mutated afterwards (the identity step replaces, not edits).
        self._memo: dict[tuple, object] = {}

    # -- public -------------------------------------------------------------------------

    def deidentify(self, ds: Dataset) -> None:
        """De-identify ``ds`` in place, file meta included.

        Raises :class:`~rpacs.errors.DeidentificationError` (whose message holds no value of
        the data) when the dataset cannot be made safe.
        """
        try:
            cleaner = TextCleaner.from_dataset(ds)
            sop_class = str(ds.get("SOPClassUID", "") or "")
            memo_key = (cleaner.values, sop_class, ds.original_encoding,
                        tuple(ds._character_set))
            kept_private = self._walk(ds, cleaner, sop_class, memo_key)
            self._write_identity(ds, kept_private)
            self._write_file_meta(ds)
        except DeidentificationError:
            raise
        except Exception as exc:
            raise DeidentificationError(
                f"could not de-identify the dataset ({type(exc).__name__})"
            ) from exc

    # -- the walk -----------------------------------------------------------------------

    def _rule(self, tag: int) -> _Rule | None:
        rule = self._exact.get(tag)
        if rule is not None:
            return rule
        for mask, value, pattern_rule in self._patterns:
            if tag & mask == value and (tag >> 16) % 2 == 0:
                return pattern_rule
        return None

    def _walk(self, ds: Dataset, cleaner: TextCleaner, sop_class: str,
              memo_key: tuple | None = None) -> bool:
        kept_private = False
        elements = ds._dict
        private_blocks: dict[tuple[int, int], str] = {}
        memo = self._memo if memo_key is not None else None
        # The dataset's own key objects are passed on: pydicom finds them by identity,
        # where a fresh int would cost a Tag() and a Python-level comparison per lookup.
        for tag in list(elements):
            number = int(tag)
            group = number >> 16
            if group & 1:
                kept_private |= self._private(ds, tag, cleaner, private_blocks)
                continue
            if memo is not None:
                element = elements[tag]
                value = getattr(element, "value", None) if isinstance(
                    element, RawDataElement) else None
                if value is not None and len(value) <= _MEMO_VALUE_BYTES:
                    key = (memo_key, number, element.VR, value)
                    outcome = memo.get(key, _MISSING)
                    if outcome is _MISSING:
                        self._element_outcome(ds, tag, number, cleaner, sop_class)
                        outcome = elements.get(tag)
                        if outcome is element:
                            outcome = _KEEP
                        if len(memo) >= _MEMO_ENTRIES:
                            memo.clear()
                        memo[key] = outcome
                    elif outcome is None:
                        del elements[tag]
                    elif outcome is not _KEEP:
                        elements[tag] = outcome
                    continue
            self._element_outcome(ds, tag, number, cleaner, sop_class)
        return kept_private

    def _element_outcome(self, ds: Dataset, tag: BaseTag, number: int,
                         cleaner: TextCleaner, sop_class: str) -> None:
        """De-identify one public element of ``ds`` in place."""
        override = self._overrides.get(number)
        if override is not None:
            self._apply_override(ds, tag, override)
            return
        rule = self._rule(number)
        if rule is None:
            self._unlisted(ds, tag, cleaner, sop_class)
            return
        code = rule.code
        if "/" in code:
            code = _resolve_combined(code, rule.row_tag, sop_class)
        self._apply(ds, tag, code, cleaner, sop_class)

    def _element(self, ds: Dataset, tag: int) -> DataElement:
        return ds[tag]  # converts a raw element: only called when its value is needed

    def _apply(self, ds: Dataset, tag: int, code: str, cleaner: TextCleaner,
               sop_class: str) -> None:
        if code == "X":
            del ds[tag]
            return
        raw = ds.get_item(tag)
        vr = _vr_of(raw, tag)
        if code == "Z":
            ds[tag] = _empty(tag, vr)
        elif code == "D":
            self._dummy(ds, tag, vr, cleaner, sop_class)
        elif code == "K":
            self._keep(ds, tag, vr, cleaner, sop_class)
        elif code == "C":
            self._clean(ds, tag, vr, cleaner, sop_class)
        elif code == "U":
            if vr == "UI":
                self._map_uids(ds, tag)
            elif vr == "SQ":
                self._recurse(ds, tag, cleaner, sop_class)
            else:
                ds[tag] = _empty(tag, vr)
        else:
            raise DeidentificationError(f"unknown action code {code!r}")

    def _unlisted(self, ds: Dataset, tag: int, cleaner: TextCleaner, sop_class: str) -> None:
        """Attributes the table does not list: kept, but names, dates and UIDs still move."""
        raw = ds.get_item(tag)
        vr = _vr_of(raw, tag)
        if vr == "PN":
            ds[tag] = _empty(tag, vr)
        elif vr in ("DA", "DT"):
            self._keep(ds, tag, vr, cleaner, sop_class)
        elif vr == "UI" and int(tag) not in _CLASS_UID_TAGS:
            element = self._element(ds, tag)
            values = value_list(element.value)
            if any(v and not _is_well_known_uid(v) for v in values):
                self._map_uids(ds, tag)
        elif vr == "SQ":
            self._recurse(ds, tag, cleaner, sop_class)

    def _keep(self, ds: Dataset, tag: int, vr: str, cleaner: TextCleaner,
              sop_class: str) -> None:
        if vr == "SQ":
            self._recurse(ds, tag, cleaner, sop_class)
        elif vr in ("DA", "DT") and self._shift_dates:
            self._shift(ds, tag, vr)

    def _clean(self, ds: Dataset, tag: int, vr: str, cleaner: TextCleaner,
               sop_class: str) -> None:
        if vr == "SQ":
            self._recurse(ds, tag, cleaner, sop_class)
        elif vr in ("DA", "DT"):
            if self._shift_dates:
                self._shift(ds, tag, vr)
        elif vr == "TM":
            return  # times stay: the offset is whole days
        elif vr == "PN":
            ds[tag] = _empty(tag, vr)
        elif vr in _BINARY_VRS:
            element = self._element(ds, tag)
            if isinstance(element.value, bytes):
                element.value = cleaner.clean_bytes(element.value)
        elif vr == "UI":
            self._map_uids(ds, tag)
        elif vr in _TEXT_VRS:
            raw = ds.get_item(tag)
            if isinstance(raw, RawDataElement) and raw.value is not None:
                # Most descriptions hold nothing to cut: look at the bytes first and leave
                # the element raw (copied as is) when cleaning would not change it.
                try:
                    text = raw.value.decode("utf-8")
                except UnicodeDecodeError:
                    text = raw.value.decode("latin-1")
                if cleaner.clean(text) == text:
                    return
            element = self._element(ds, tag)
            limit = _MAX_LENGTH.get(vr, 64)
            values = [cleaner.clean(str(v))[:limit] for v in value_list(element.value)]
            element.value = values if len(values) > 1 else (values[0] if values else "")

    def _dummy(self, ds: Dataset, tag: int, vr: str, cleaner: TextCleaner,
               sop_class: str) -> None:
        if vr == "SQ":
            # A dummy sequence is the same sequence with its items de-identified: structure
            # (and the references a viewer follows) survives, identifying content does not.
            self._recurse(ds, tag, cleaner, sop_class)
        elif vr == "UI":
            self._map_uids(ds, tag)
        elif vr in ("DA", "DT") and self._shift_dates and ds[tag].value:
            self._shift(ds, tag, vr)
        elif vr in _BINARY_VRS:
            ds[tag] = DataElement(tag, vr, b"\x00\x00")
        elif vr in _NUMBER_VRS:
            ds[tag] = DataElement(tag, vr, 0)
        else:
            dummy = _DUMMY.get(vr, "ANONYMIZED")[: _MAX_LENGTH.get(vr, 64)]
            ds[tag] = DataElement(tag, vr, dummy)

    def _shift(self, ds: Dataset, tag: int, vr: str) -> None:
        element = self._element(ds, tag)
        if element.value in (None, ""):
            return
        shift = shift_da if vr == "DA" else shift_dt
        values = [shift(str(v), self.offset) for v in value_list(element.value)]
        element.value = values if len(values) > 1 else values[0]

    def _map_uids(self, ds: Dataset, tag: int) -> None:
        element = self._element(ds, tag)
        values = [uid_for(self.secret, str(v)) if str(v).strip() else ""
                  for v in value_list(element.value)]
        element.value = values if len(values) > 1 else (values[0] if values else "")

    def _recurse(self, ds: Dataset, tag: int, cleaner: TextCleaner, sop_class: str) -> None:
        element = self._element(ds, tag)
        for item in element.value or ():
            self._walk(item, cleaner, sop_class)

    def _apply_override(self, ds: Dataset, tag: int, override: TagOverride) -> None:
        raw = ds.get_item(tag)
        vr = _vr_of(raw, tag)
        if override.action == "keep":
            return
        if override.action == "remove":
            del ds[tag]
        elif override.action == "empty":
            ds[tag] = _empty(tag, vr)
        elif override.action == "set":
            ds[tag] = DataElement(tag, vr, override.value)
        elif override.action == "regex-keep":
            text = "\\".join(str(v) for v in value_list(self._element(ds, tag).value))
            kept = " ".join(m.group(0) for m in re.finditer(override.pattern or "", text))
            ds[tag] = DataElement(tag, vr, kept[: _MAX_LENGTH.get(vr, 64)])

    def _private(self, ds: Dataset, tag: int, cleaner: TextCleaner,
                 blocks: dict[tuple[int, int], str]) -> bool:
        """Keep a private element only when (creator, group, offset) is on the safe list."""
        group, element = tag >> 16, tag & 0xFFFF
        if 0x0010 <= element <= 0x00FF:
            creator = str(self._element(ds, tag).value or "").strip()
            blocks[(group, element)] = creator
            if any(k[0] == creator and k[1] == group for k in self._safe_private):
                return False  # kept for now; dropped below if none of its block is kept
            del ds[tag]
            return False
        creator_element = ds.get((group, element >> 8))
        creator = blocks.get((group, element >> 8))
        if creator is None and creator_element is not None:
            creator = str(creator_element.value or "").strip()
        if creator is None or (creator, group, element & 0xFF) not in self._safe_private:
            del ds[tag]
            return False
        raw = ds.get_item(tag)
        vr = _vr_of(raw, tag)
        value = self._element(ds, tag)
        if isinstance(value.value, bytes):
            value.value = cleaner.clean_bytes(value.value)
        elif vr in _TEXT_VRS or vr in ("PN",):
            value.value = cleaner.clean(str(value.value))
        return True

    # -- what rpacs writes ----------------------------------------------------------------

    def _methodvalue_list(self) -> list[str]:
        names = ["rpacs 0.1: DICOM PS3.15 E.1 Basic Profile"]
        names += [o.meaning.replace(" Option", "")[:64] for o in sorted(
            self.profile.options, key=lambda o: o.code)]
        return names

    def _method_codes(self, encoding: tuple[bool | None, bool | None],
                      kept_private: bool) -> RawDataElement:
        """DeidentificationMethodCodeSequence, encoded once per encoding and reused.

        The same few code items go into every instance; building and encoding them per file
        would cost more than de-identifying the rest of the header.
        """
        key = (encoding, kept_private)
        cached = self._encoded_codes.get(key)
        if cached is not None:
            return cached
        codes = [BASIC_PROFILE_CODE] + [
            (o.code, o.meaning) for o in sorted(self.profile.options, key=lambda o: o.code)
        ]
        if kept_private and Option.RETAIN_SAFE_PRIVATE not in self.profile.options:
            codes.append((Option.RETAIN_SAFE_PRIVATE.code, Option.RETAIN_SAFE_PRIVATE.meaning))
        items = []
        for value, meaning in codes:
            item = Dataset()
            item.CodeValue = value
            item.CodingSchemeDesignator = "DCM"
            item.CodeMeaning = meaning
            items.append(item)
        implicit, little = encoding
        implicit = bool(implicit)
        little = True if little is None else little
        fp = DicomBytesIO()
        fp.is_implicit_VR, fp.is_little_endian = implicit, little
        write_data_element(fp, DataElement(_DEID_METHOD_CODES, "SQ", Sequence(items)))
        raw = read_dataset(BytesIO(fp.getvalue()), implicit, little).get_item(_DEID_METHOD_CODES)
        self._encoded_codes[key] = raw
        return raw

    def _write_identity(self, ds: Dataset, kept_private: bool) -> None:
        ident = self.identity
        # New elements, never edits of existing ones: those may be shared memo results.
        for tag, vr, value in ((0x00100020, "LO", ident.participant_id),
                               (0x00100010, "PN", ident.participant_id),
                               (0x00080080, "LO", ident.project_acronym),
                               (0x00080090, "PN", ident.event)):
            ds[tag] = DataElement(tag, vr, value)
        ds[_PATIENT_IDENTITY_REMOVED] = DataElement(_PATIENT_IDENTITY_REMOVED, "CS", "YES")
        ds[_DEID_METHOD] = DataElement(_DEID_METHOD, "LO", list(self._method))
        ds[_DEID_METHOD_CODES] = self._method_codes(ds.original_encoding, kept_private)
        if self._shift_dates and self.offset:
            ds[_LONGITUDINAL_MODIFIED] = DataElement(_LONGITUDINAL_MODIFIED, "CS", "MODIFIED")
        if "StudyInstanceUID" in ds and ds.StudyInstanceUID:
            ds[0x00200010] = DataElement(0x00200010, "SH",
                                         study_id_for(str(ds.StudyInstanceUID)))
        # A private creator whose block lost every element goes too.
        for tag in [int(t) for t in ds._dict if (int(t) >> 16) & 1]:
            group, element = tag >> 16, tag & 0xFFFF
            if 0x0010 <= element <= 0x00FF and not any(
                (int(t) >> 16) == group and (int(t) & 0xFFFF) >> 8 == element
                for t in ds._dict
            ):
                del ds[tag]

    def _write_file_meta(self, ds: Dataset) -> None:
        meta = getattr(ds, "file_meta", None)
        if meta is None:
            return
        for tag in _META_DROP:
            if tag in meta:
                del meta[tag]
        # Elements are set directly: FileMetaDataset re-validates on every attribute set.
        for tag, vr, value in (
            (0x00020003, "UI", ds.get("SOPInstanceUID")),
            (0x00020002, "UI", ds.get("SOPClassUID")),
            (0x00020012, "UI", IMPLEMENTATION_CLASS_UID),
            (0x00020013, "SH", IMPLEMENTATION_VERSION_NAME),
        ):
            if value:
                meta._dict[BaseTag(tag)] = DataElement(tag, vr, str(value))


def _empty(tag: int, vr: str) -> DataElement:
    if vr == "SQ":
        return DataElement(tag, vr, Sequence())
    if vr in _BINARY_VRS:
        return DataElement(tag, vr, b"")
    if vr in _NUMBER_VRS or vr in ("IS", "DS"):
        return DataElement(tag, vr, None)
    return DataElement(tag, vr, "")


__all__ = ["IMPLEMENTATION_CLASS_UID", "Deidentifier", "Identity", "TableRow"]
