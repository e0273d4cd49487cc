"""The de-identification engine: a :class:`Deidentifier` applies a profile to a dataset.

It walks the dataset once, the top level and every sequence item at every depth, and decides
per element from a rule resolved once per (profile, SOP class, tag). Elements whose rule
leaves them as they are — pixel data above all — are never decoded: pydicom's raw element
stays in place and is written back byte for byte. Elements that change are computed from
their raw bytes and replaced by new raw elements already encoded in the dataset's transfer
syntax and character set, and the result is memoised by those bytes: the instances of a
series repeat most of their header, so most of the work is done once per series.

What each action does (PS3.15 E.1.1, as rpacs reads it):

- ``X`` removes the element. ``Z`` empties it (a sequence becomes an empty sequence).
- ``D`` replaces the value with a dummy of the VR: PN ``ANONYMOUS``; other text
  ``ANONYMIZED`` cut to the VR's length; AS ``000Y``; IS/DS ``0``; binary numbers 0; OB/OW
  two zero bytes; TM ``000000``. A DA/DT value is *shifted* by the date offset instead
  (a neutral dummy would lose the intervals research needs); an empty or unparseable date
  gets ``19000101`` (``19000101000000`` for DT). A UID is mapped as for ``U``. On a
  sequence (Content Sequence has ``D``) the sequence is kept and its items de-identified,
  so that structure and references survive while identifying content does not.
- ``K`` keeps the value; a DA/DT is still shifted unless the profile retains full dates.
  On a sequence, the items are de-identified.
- ``C`` (clean): text has the instance's identifying values and identifying patterns cut
  out (:mod:`rpacs.deid.clean`); binary values are cleaned in place with same-length runs of
  ``*``; DA/DT are shifted; TM stays (the offset is whole days); PN is emptied; numbers
  stay; a UID is mapped; a sequence's items are de-identified.
- ``U`` maps each UID with :func:`~rpacs.deid.uid.uid_for`; on a sequence (the ``U*`` of
  ``X/Z/U*``) the sequence is kept and its UIDs are mapped, so references keep resolving.
- Combined codes (``X/Z``, ``X/D``, ``Z/D``, ``X/Z/D``) by the attribute's Type in the IOD
  of the instance's SOP class (``_standard/attribute-types.json``): Type 1 the last letter,
  Type 2 ``Z`` (also for ``X/D``: an empty value is stricter than a dummy and valid for
  Type 2), Type 3 ``X``; unknown: ``Z`` if offered, else the last letter — the stricter
  action that still leaves a valid object. ``X/Z/U*`` is always ``U``.
- Attributes the table does not list are kept, except: PN values are emptied (names always
  identify), DA/DT values are shifted, free text (ST, LT, UT) is cleaned as for ``C``,
  short text (LO, SH, UC) loses the instance's own identifying values (not the patterns,
  which would cut code values and version numbers), and UIDs are mapped unless they are
  well-known DICOM UIDs (pydicom's UID dictionary) or the attribute names a class, transfer
  syntax or coding scheme (SOPClassUID, ReferencedSOPClassUID, TransferSyntaxUID,
  CodingSchemeUID ...), or the profile retains UIDs. Well-known UIDs are never mapped, in
  any attribute: they identify no one. Public tags that the DICOM dictionary does not know
  either are removed: they are no standard attribute, and nothing says what they hold.
- Private elements are removed unless (creator, group, element offset) is on the safe list
  (:mod:`rpacs.deid.private`); a kept one is treated as ``C``; a private creator stays only
  while an element of its block stays. Group lengths are removed (they would be wrong).
- A project's per-tag override wins over the table: ``keep`` keeps the element exactly as
  it is (no date shift, no Clean; a kept sequence stays, its items still de-identified by
  their own rules), ``remove`` acts as ``X``, ``empty`` as ``Z``, ``set`` writes the
  given text (and adds the element at the top level where an instance lacks it),
  ``regex-keep`` keeps only the pattern's matches (joined by a space, cut to the VR's
  length).

After the table, rpacs writes the project's identity: PatientID = PatientName =
participant ID, InstitutionName = project acronym, ReferringPhysicianName = event,
PatientIdentityRemoved ``YES``, DeidentificationMethod and its code sequence (113100, each
option's code, and 113111 when a safe private element was kept),
LongitudinalTemporalInformationModified ``MODIFIED`` when dates moved, and StudyID derived
from the new StudyInstanceUID. In the file meta, the media storage UIDs follow the data set,
the implementation is rpacs's, and the application entity titles of sender and receiver and
the private information of the source are dropped.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from pydicom import Dataset
from pydicom.datadict import DicomDictionary, dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID_dictionary

from ..errors import DeidentificationError
from . import quiet  # noqa: F401  (pydicom's value warnings off)
from .clean import TextCleaner, value_list
from .dates import shift_da, shift_dt
from .encoding import (
    BINARY_VRS,
    MAX_LENGTH,
    NUMBER_FORMATS,
    TEXT_VRS,
    decode_text,
    effective_vr,
    element_text,
    encode_text,
    encoder,
    number_bytes,
    raw_element,
    split_values,
    text_codec,
)
from .enum import BASIC_PROFILE_CODE, Option
from .identity import Identity
from .private import default_safe_private
from .profile import Profile, TagOverride, attribute_types, table
from .uid import study_id_for, uid_for

#: rpacs's implementation class UID (2.25 form of a fixed UUID) written in every file meta.
IMPLEMENTATION_CLASS_UID = "2.25.207368932846379153468432516786470745812"
IMPLEMENTATION_VERSION_NAME = "RPACS_0_1"

_DUMMY = {"PN": "ANONYMOUS", "DA": "19000101", "DT": "19000101000000", "TM": "000000",
          "AS": "000Y", "IS": "0", "DS": "0"}
_DUMMY_TEXT = "ANONYMIZED"
#: File meta elements naming the systems that sent or received the file, and the source's
#: private information (0002,0016-0018, 0026-0028, 0100, 0102).
_META_DROP = (0x00020016, 0x00020017, 0x00020018, 0x00020026, 0x00020027, 0x00020028,
              0x00020100, 0x00020102)
_PATIENT_IDENTITY_REMOVED = 0x00120062
_DEID_METHOD = 0x00120063
_DEID_METHOD_CODES = 0x00120064
_LONGITUDINAL_MODIFIED = 0x00280303
_STUDY_INSTANCE_UID = 0x0020000D
_STUDY_ID = 0x00200010
_SOP_CLASS_UID = 0x00080016
_SOP_INSTANCE_UID = 0x00080018
#: Values up to this size are memoised; larger ones (never pixel data: it is not looked at)
#: are worked on every time rather than held in memory.
_MEMO_VALUE_BYTES = 1 << 16
_MEMO_ENTRIES = 100_000
_MISSING = object()
#: An element's outcome: it stays as it is.
_KEEP = object()
#: Rule for an attribute the table does not list.
_UNLISTED = "N"
_DATE_VRS = ("DA", "DT")
#: Free text the table does not list is cleaned in full (values and patterns).
_FREE_TEXT_VRS = ("ST", "LT", "UT")
#: Short text the table does not list loses only the instance's own identifying values:
#: patterns would cut code values, coil names and version numbers. A URL too
#: (RetrieveURL: ``…?patientID=…``). Not CS: a code that equals a name part (a patient
#: called Head, the prefix Mr) would lose BodyPartExamined HEAD or the Modality MR.
_SHORT_TEXT_VRS = ("LO", "SH", "UC", "UR")


_UID_PART = re.compile(r"[0-9]+(?:\.[0-9]+)*")


def _uid_part(value: str) -> str:
    """The UID at the start of ``value`` (padding aside); what follows it is not a UID's."""
    match = _UID_PART.match(value.strip(" \x00"))
    return match.group() if match else ""


@cache
def _class_uid_tags() -> frozenset[int]:
    """Attributes whose UID names a kind of thing (class, syntax, scheme), not an instance."""
    kinds = re.compile(r"SOPClass|TransferSyntax|ClassUID|CodingSchemeUID|MappingResourceUID"
                       r"|ContextGroupExtensionCreatorUID|PrivateInformationCreatorUID")
    return frozenset(tag for tag, entry in DicomDictionary.items()
                     if entry[0] == "UI" and kinds.search(entry[4]))


@cache
def _table_codes(options: frozenset[Option]) -> tuple[dict[int, tuple[str, str]], tuple]:
    """(exact tag → (code, row tag), repeating-group patterns) for a set of options."""
    exact: dict[int, tuple[str, str]] = {}
    patterns: list[tuple[int, int, tuple[str, str]]] = []
    profile = Profile(options=options)
    for row in table():
        if row.is_private_row:
            continue  # private elements have their own rule: see Deidentifier._private
        entry = (profile.code_for(row), row.tag)
        mask, value = row.mask_and_value
        if mask != 0xFFFFFFFF:
            patterns.append((mask, value, entry))
        else:
            exact[value] = entry
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
    attr_type = None
    if types:
        family = _family_of(sop_class_uid)
        attr_type = types.get(family, types["default"]) if family else types["default"]
    letters = code.split("/")
    if attr_type == 1:
        return letters[-1]
    if attr_type == 2:
        return "Z"  # present but empty: stricter than a dummy, and valid for Type 2
    if attr_type == 3:
        return "X"
    # Unknown: zero length when the code allows it, else the last letter.
    return "Z" if "Z" in letters else letters[-1]


class _Instance:
    """What the walk of one instance shares across its levels."""

    __slots__ = ("cleaner", "implicit", "kept_private", "little", "memo", "plan", "sop_class")

    def __init__(self, cleaner: TextCleaner, sop_class: str, plan: dict[int, Any],
                 memo: dict[tuple, Any], implicit: bool, little: bool):
        self.cleaner = cleaner
        self.sop_class = sop_class
        self.plan = plan
        self.memo = memo
        self.implicit = implicit
        self.little = little
        self.kept_private = False


class Deidentifier:
    """Applies one profile with one project's keys and one participant's identity.

    Build one per import run (and per worker process); :meth:`deidentify` then works on
    dataset after dataset with lookups built once: rules per tag and SOP class, encoded
    identity elements per transfer syntax, and outcomes per element value.
    """

    def __init__(self, profile: Profile, secret: bytes, identity: Identity,
                 date_offset_days: int):
        self.profile = profile
        self.secret = secret
        self.identity = identity
        self.offset = date_offset_days
        self._exact, self._patterns = _table_codes(profile.options)
        self._overrides: dict[int, TagOverride] = {o.tag: o for o in profile.overrides}
        # A value the project sets is added where the instance lacks the element (top level).
        self._set_values = tuple((o.tag, dictionary_VR(o.tag), str(o.value))
                                 for o in profile.overrides if o.action == "set")
        self._shift_dates = Option.RETAIN_LONGITUDINAL_FULL_DATES not in profile.options
        self._retain_uids = Option.RETAIN_UIDS in profile.options
        self._safe_private = frozenset(
            s.key for s in (*default_safe_private(), *profile.safe_private))
        self._class_uids = _class_uid_tags()
        self._plans: dict[str, dict[int, Any]] = {}
        # Outcomes by (patient's values, SOP class, encoding), then by (tag, VR, bytes).
        # Outcomes are immutable raw elements, so instances can share them.
        self._memos: dict[tuple, dict[tuple, Any]] = {}
        self._memo_size = 0
        self._uids: dict[str, str] = {}
        self._study_ids: dict[bytes, bytes] = {}
        self._identity_cache: dict[tuple, list[tuple[int, RawDataElement | DataElement]]] = {}
        # The byte path's elements added after the walk (set values, identity, StudyID), by
        # what they depend on: which set values are present and the study's new UID.
        self._tails: dict[tuple, tuple[tuple[int, RawDataElement], ...] | None] = {}
        # The byte path's last file laid out and decided (raw._Layout) of each file size:
        # the next file of the series of that size is compared with it, and only what
        # differs is walked (a file of another size never lies out alike).
        self._layouts: dict[int, Any] = {}

    # -- public -------------------------------------------------------------------------

    def deidentify(self, ds: Dataset) -> None:
        """De-identify ``ds`` in place, file meta included.

        Raises :class:`~rpacs.errors.DeidentificationError` (whose message holds no value of
        the data) when the dataset cannot be made safe.
        """
        try:
            implicit, little = ds.original_encoding
            if implicit is None or little is None:  # built in memory, never read
                implicit, little = False, True
            codec = text_codec(ds)
            cleaner = TextCleaner.from_dataset(ds)
            sop_class = _text_of(ds, _SOP_CLASS_UID)
            plan = self._plans.get(sop_class)
            if plan is None:
                plan = self._plans[sop_class] = {}
            memo_key = (cleaner.values, sop_class, implicit, little, codec)
            memo = self._memos.get(memo_key)
            if memo is None:
                if self._memo_size > _MEMO_ENTRIES:
                    self._memos.clear()
                    self._memo_size = 0
                memo = self._memos[memo_key] = {}
            instance = _Instance(cleaner, sop_class, plan, memo, implicit, little)
            before = len(memo)
            self._walk(ds, instance, codec)
            self._memo_size += len(memo) - before
            self._add_set_values(ds, instance, codec)
            self._write_identity(ds, instance, codec)
            self._write_file_meta(ds)
        except DeidentificationError:
            raise
        except Exception as exc:
            raise DeidentificationError(
                f"could not de-identify the dataset ({type(exc).__name__})"
            ) from exc

    # -- rules --------------------------------------------------------------------------

    def _rule(self, number: int, plan: dict[int, Any], sop_class: str) -> tuple[Any, Any]:
        """(rule, VRs that need work) of a public tag for this SOP class.

        The rule is an action code or an override. Under K and for unlisted attributes
        only some VRs are ever changed; every other element is passed over without a
        look at its value. ``None`` means every VR needs work.
        """
        rule: Any = self._overrides.get(number)
        if rule is None:
            entry = self._exact.get(number)
            if entry is None:
                for mask, value, pattern_entry in self._patterns:
                    if number & mask == value:
                        entry = pattern_entry
                        break
            if entry is None:
                # Not in the table: kept (with the checks of _texts), unless the DICOM
                # dictionary does not know it either — then nothing says what it holds.
                rule = _UNLISTED if _is_standard(number) else "X"
            else:
                code, row_tag = entry
                rule = _resolve_combined(code, row_tag, sop_class) if "/" in code else code
        dates = _DATE_VRS if self._shift_dates else ()
        work: frozenset[str] | None = None
        if rule == "K":
            work = frozenset(("SQ", "UI", *dates))  # a kept UID loses what is not one
        elif rule == _UNLISTED:
            work = frozenset(("SQ", "PN", "UI", *dates, *_FREE_TEXT_VRS, *_SHORT_TEXT_VRS))
        plan[number] = (rule, work)
        return rule, work

    # -- the walk -----------------------------------------------------------------------

    def _walk(self, ds: Dataset, instance: _Instance, codec: str | None) -> None:
        elements = ds._dict
        if codec is not None:
            codec = text_codec(ds, codec)  # an item may name its own character set
        plan = instance.plan
        memo = instance.memo
        creators: list[BaseTag] = []
        kept_blocks: set[int] = set()
        block_creators: dict[int, str] = {}
        for tag, element in list(elements.items()):
            number = int(tag)
            group = number >> 16
            if group & 1:
                self._private(ds, tag, number, element, instance, codec, creators,
                              kept_blocks, block_creators)
                continue
            if number & 0xFFFF == 0 or group == 0x0002:
                # Group lengths would be wrong after changes; file meta belongs in the meta.
                del elements[tag]
                continue
            entry = plan.get(number)
            rule, work = entry if entry is not None else self._rule(
                number, plan, instance.sop_class)
            if rule == "X":
                del elements[tag]
                continue
            vr = element.VR
            if vr is None or vr == "UN" or type(element) is not RawDataElement:
                vr = effective_vr(element, number)
            if work is not None and vr not in work:
                continue  # kept without looking at the value: the fast, common case
            if vr == "SQ":
                self._sequence(ds, tag, number, element, rule, instance, codec)
                continue
            if type(element) is RawDataElement and codec is not None:
                value = element.value or b""
                if len(value) <= _MEMO_VALUE_BYTES:
                    key = (number, vr, value)
                    outcome = memo.get(key, _MISSING)
                    if outcome is _MISSING:
                        outcome = memo[key] = self._raw_outcome(
                            rule, number, vr, value, instance, codec)
                else:
                    outcome = self._raw_outcome(rule, number, vr, value, instance, codec)
                if outcome is None:
                    del elements[tag]
                elif outcome is not _KEEP:
                    elements[tag] = outcome
            else:
                self._converted(ds, tag, number, vr, rule, instance)
        # A private creator stays only while an element of its block stays.
        for tag in creators:
            number = int(tag)
            if (number >> 16) << 8 | (number & 0xFF) not in kept_blocks:
                del elements[tag]
        if creators:
            ds._private_blocks = {}

    def _private(self, ds: Dataset, tag: BaseTag, number: int, element: Any,
                 instance: _Instance, codec: str | None, creators: list[BaseTag],
                 kept_blocks: set[int], block_creators: dict[int, str]) -> None:
        """Keep a private element only when (creator, group, offset) is on the safe list."""
        elements = ds._dict
        offset = number & 0xFFFF
        if 0x0010 <= offset <= 0x00FF:
            creators.append(tag)  # decided after its block's elements
            return
        if offset < 0x0010:  # group length or a reserved element
            del elements[tag]
            return
        block = number >> 8
        creator = block_creators.get(block)
        if creator is None:
            creator = block_creators[block] = element_text(
                elements.get((number & 0xFFFF0000) | offset >> 8))
        if (creator, number >> 16, offset & 0xFF) not in self._safe_private:
            del elements[tag]
            return
        kept_blocks.add(block)
        instance.kept_private = True
        vr = element.VR if element.VR and " or " not in element.VR else "UN"
        if vr == "SQ" or (type(element) is not RawDataElement
                          and isinstance(element.value, Sequence)):
            self._sequence(ds, tag, number, element, "C", instance, codec)
        elif type(element) is RawDataElement and codec is not None:
            value = element.value or b""
            key = (number, vr, value)
            outcome = instance.memo.get(key, _MISSING) if len(value) <= _MEMO_VALUE_BYTES \
                else _MISSING
            if outcome is _MISSING:
                outcome = self._raw_outcome("C", number, vr, value, instance, codec)
                if len(value) <= _MEMO_VALUE_BYTES:
                    instance.memo[key] = outcome
            if outcome is None:
                del elements[tag]
            elif outcome is not _KEEP:
                elements[tag] = outcome
        else:
            self._converted(ds, tag, number, vr, "C", instance)

    def _sequence(self, ds: Dataset, tag: BaseTag, number: int, element: Any, rule: Any,
                  instance: _Instance, codec: str | None) -> None:
        """A sequence is emptied (Z, empty), removed, or kept with its items de-identified."""
        elements = ds._dict
        action = rule.action if isinstance(rule, TagOverride) else rule
        if action == "remove":
            del elements[tag]
            return
        if action in ("Z", "empty"):
            elements[tag] = raw_element(number, "SQ", b"", instance.implicit, instance.little)
            return
        raw = type(element) is RawDataElement
        value = element.value if raw else None
        key = (number, "SQ", value)
        if raw and codec is not None and value is not None and len(value) <= _MEMO_VALUE_BYTES:
            found = instance.memo.get(key)
            if found is not None:
                outcome, kept_private = found
                elements[tag] = outcome
                instance.kept_private |= kept_private
                return
        else:
            key = None  # type: ignore[assignment]
        items = ds[tag].value  # converts a raw sequence: its items are needed
        if not isinstance(items, Sequence):
            del elements[tag]  # a value that does not parse as items cannot be checked
            return
        before = instance.kept_private
        instance.kept_private = False
        for item in items:
            self._walk(item, instance, codec)
        kept_private = instance.kept_private
        instance.kept_private = before or kept_private
        if key is not None:
            encoded = encoder(instance.implicit, instance.little).sequence_value(items, codec)
            outcome = raw_element(number, "SQ", encoded, instance.implicit, instance.little)
            instance.memo[key] = (outcome, kept_private)
            elements[tag] = outcome

    # -- outcomes -----------------------------------------------------------------------

    def _raw_outcome(self, rule: Any, number: int, vr: str, value: bytes,
                     instance: _Instance, codec: str) -> Any:
        """What a raw value becomes: a new raw element, None (removed) or _KEEP."""
        if vr in TEXT_VRS:
            texts = split_values(decode_text(value, codec), vr)
            result = self._texts(rule, number, vr, texts, instance.cleaner)
            if result is None or result is _KEEP:
                return result
            new = encode_text("\\".join(result), vr, codec)
        else:
            result = self._binary(rule, vr, value, bool(value), instance.cleaner)
            if result is None or result is _KEEP:
                return result
            if isinstance(result, bytes):
                new = result
            else:  # a dummy: zero
                new = number_bytes(vr, 0, instance.little) if vr in NUMBER_FORMATS \
                    else b"\x00\x00"
        if new == value:
            return _KEEP
        return raw_element(number, vr, new, instance.implicit, instance.little)

    def _converted(self, ds: Dataset, tag: BaseTag, number: int, vr: str, rule: Any,
                   instance: _Instance) -> None:
        """The same outcomes for an element pydicom has converted (or a caller built)."""
        value = ds[tag].value
        elements = ds._dict
        if vr in TEXT_VRS and not isinstance(value, bytes):
            texts = [str(v) for v in value_list(value)]
            result = self._texts(rule, number, vr, texts, instance.cleaner)
            if result is None:
                del elements[tag]
            elif result is not _KEEP:
                new = result if len(result) > 1 else (result[0] if result else "")
                elements[tag] = DataElement(number, vr, new)
            return
        data = value if isinstance(value, bytes) else b""
        has_value = value is not None and value != b"" and value != []
        result = self._binary(rule, vr, data, has_value, instance.cleaner)
        if result is None:
            del elements[tag]
        elif result == "dummy":
            elements[tag] = DataElement(number, vr, 0 if vr in NUMBER_FORMATS else b"\x00\x00")
        elif result is not _KEEP:
            empty = None if vr in NUMBER_FORMATS and not result else result
            elements[tag] = DataElement(number, vr, empty)

    def _texts(self, rule: Any, number: int, vr: str, texts: list[str],
               cleaner: TextCleaner) -> Any:
        """New values of a text element; None to remove it, _KEEP when it stays."""
        if isinstance(rule, TagOverride):
            return self._override(rule, number, vr, texts, cleaner)
        if rule == "Z":
            return [] if texts else _KEEP
        if rule == "K":
            if vr == "UI":
                return self._uid_kept(texts)
            return self._shifted(vr, texts) if vr in _DATE_VRS else _KEEP
        if rule == _UNLISTED:
            if vr == "PN":
                return [] if texts else _KEEP
            if vr in _DATE_VRS:
                return self._shifted(vr, texts)
            if vr == "UI":
                if number not in self._class_uids and not self._retain_uids:
                    return self._mapped(texts)
                return self._uid_kept(texts)
            if vr in _FREE_TEXT_VRS:
                return self._cleaned(vr, texts, cleaner)
            if vr in _SHORT_TEXT_VRS:
                cleaned = [cleaner.clean_own_values(t) for t in texts]
                return cleaned if cleaned != texts else _KEEP
            return _KEEP
        if rule == "U":
            return self._mapped(texts) if vr == "UI" else ([] if texts else _KEEP)
        if rule == "D":
            return self._dummy(vr, texts)
        if rule == "C":
            return self._cleaned(vr, texts, cleaner)
        raise DeidentificationError(f"unknown action code {rule!r}")

    def _binary(self, rule: Any, vr: str, value: bytes, has_value: bool,
                cleaner: TextCleaner) -> Any:
        """Outcome for binary and number VRs: new bytes, "dummy", None or _KEEP."""
        action = rule.action if isinstance(rule, TagOverride) else rule
        if action in ("K", _UNLISTED, "keep") or (action == "C" and vr not in BINARY_VRS):
            return _KEEP
        if action == "remove":
            return None
        if action in ("Z", "U", "empty", "set", "regex-keep"):
            return b"" if has_value else _KEEP
        if action == "D":
            return "dummy"
        if action == "C":
            return cleaner.clean_bytes(value)
        raise DeidentificationError(f"unknown action code {action!r}")

    def _override(self, override: TagOverride, number: int, vr: str, texts: list[str],
                  cleaner: TextCleaner) -> Any:
        action = override.action
        if action == "keep":
            return _KEEP
        if action == "remove":
            return None
        if action == "empty":
            return [] if texts else _KEEP
        if action == "set":
            return [str(override.value)[: MAX_LENGTH.get(vr, 64)]]
        # regex-keep: only what the pattern matches survives, joined by a space.
        text = "\\".join(texts)
        kept = " ".join(m.group(0) for m in re.finditer(override.pattern or "", text))
        return [kept[: MAX_LENGTH.get(vr, 64)]] if kept else []

    def _shifted(self, vr: str, texts: list[str]) -> Any:
        if not self._shift_dates or not texts:
            return _KEEP
        shift = shift_da if vr == "DA" else shift_dt
        return [shift(t, self.offset) for t in texts]

    def _uid_kept(self, texts: list[str]) -> Any:
        """A UID kept as it is (a class's, or every UID when they are retained), but only
        the UID: text appended to it ('… Wenche Warn') is someone's."""
        kept = [_uid_part(t) for t in texts]
        return kept if kept != texts else _KEEP

    def _mapped(self, texts: list[str]) -> Any:
        mapped = [self._uid(t) for t in texts]
        return mapped if mapped != texts else _KEEP

    def _uid(self, uid: str) -> str:
        """The project's UID for ``uid``; empty and well-known UIDs stay as they are."""
        uid = uid.strip(" \x00")
        if not uid or uid in UID_dictionary:
            return uid
        new = self._uids.get(uid)
        if new is None:
            if len(self._uids) > _MEMO_ENTRIES:
                self._uids.clear()
            new = self._uids[uid] = uid_for(self.secret, uid)
        return new

    def _dummy(self, vr: str, texts: list[str]) -> list[str]:
        if vr == "UI":
            return [self._uid(t) for t in texts]
        if vr in _DATE_VRS and self._shift_dates:
            shifted = self._shifted(vr, texts)
            if shifted is not _KEEP and any(shifted):
                return shifted
        return [_DUMMY.get(vr, _DUMMY_TEXT)[: MAX_LENGTH.get(vr, 64)]]

    def _cleaned(self, vr: str, texts: list[str], cleaner: TextCleaner) -> Any:
        if vr in _DATE_VRS:
            return self._shifted(vr, texts)
        if vr == "PN":
            return [] if texts else _KEEP
        if vr == "UI":
            return self._mapped(texts)
        if vr in ("TM", "AS", "IS", "DS"):
            return _KEEP  # times stay (whole-day offsets); numbers identify no one
        limit = MAX_LENGTH.get(vr, 64)
        cleaned = [cleaner.clean(t)[:limit] for t in texts]
        return cleaned if cleaned != texts else _KEEP

    # -- what rpacs writes ----------------------------------------------------------------

    def _method_texts(self, kept_private: bool) -> list[str]:
        options = sorted(self.profile.options, key=lambda o: o.code)
        if kept_private and Option.RETAIN_SAFE_PRIVATE not in self.profile.options:
            options.append(Option.RETAIN_SAFE_PRIVATE)
        names = ["rpacs 0.1: DICOM PS3.15 E.1 Basic Profile"]
        names += [o.meaning.replace(" Option", "")[:64] for o in options]
        return names

    def _method_codes(self, kept_private: bool) -> Sequence:
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
        return Sequence(items)

    def _identity_elements(self, instance: _Instance, codec: str | None
                           ) -> list[tuple[int, RawDataElement | DataElement]]:
        """The elements rpacs writes into every instance, encoded once per syntax."""
        key = (instance.implicit, instance.little, codec, instance.kept_private)
        cached = self._identity_cache.get(key)
        if cached is not None:
            return cached
        ident = self.identity
        texts: list[tuple[int, str, str | list[str]]] = [
            (0x00100020, "LO", ident.participant_id),
            (0x00100010, "PN", ident.participant_id),
            (0x00080080, "LO", ident.project_acronym),
            (0x00080090, "PN", ident.event),
            (_PATIENT_IDENTITY_REMOVED, "CS", "YES"),
            (_DEID_METHOD, "LO", self._method_texts(instance.kept_private)),
        ]
        if self._shift_dates and self.offset:
            texts.append((_LONGITUDINAL_MODIFIED, "CS", "MODIFIED"))
        out: list[tuple[int, RawDataElement | DataElement]] = []
        for tag, vr, value in texts:
            joined = "\\".join(value) if isinstance(value, list) else value
            try:
                if codec is None:
                    raise UnicodeEncodeError("ascii", "", 0, 0, "no simple codec")
                element: Any = raw_element(tag, vr, encode_text(joined, vr, codec),
                                           instance.implicit, instance.little)
            except UnicodeEncodeError:
                element = DataElement(tag, vr, value)
            out.append((tag, element))
        codes = encoder(instance.implicit, instance.little).sequence_value(
            self._method_codes(instance.kept_private), "latin-1")
        out.append((_DEID_METHOD_CODES, raw_element(
            _DEID_METHOD_CODES, "SQ", codes, instance.implicit, instance.little)))
        if all(isinstance(e, RawDataElement) for _, e in out):
            self._identity_cache[key] = out  # raw elements are immutable: safe to share
        return out

    def _add_set_values(self, ds: Dataset, instance: _Instance, codec: str | None) -> None:
        """Add each value the project sets whose element the instance does not have."""
        elements = ds._dict
        for number, vr, value in self._set_values:
            tag = BaseTag(number)
            if tag in elements:
                continue  # present: the walk has set it already
            text = value[: MAX_LENGTH.get(vr, 64)]
            if codec is None:
                elements[tag] = DataElement(number, vr, text)
            else:
                elements[tag] = raw_element(number, vr, encode_text(text, vr, codec),
                                            instance.implicit, instance.little)

    def _write_identity(self, ds: Dataset, instance: _Instance, codec: str | None) -> None:
        elements = ds._dict
        for tag, element in self._identity_elements(instance, codec):
            elements[BaseTag(tag)] = element
        study_uid = elements.get(BaseTag(_STUDY_INSTANCE_UID))
        if study_uid is not None:
            uid = _text_of(ds, _STUDY_INSTANCE_UID).encode("ascii", "replace")
            if uid:
                study_id = self._study_ids.get(uid)
                if study_id is None:
                    study_id = self._study_ids[uid] = encode_text(
                        study_id_for(uid.decode("ascii")), "SH", "latin-1")
                elements[BaseTag(_STUDY_ID)] = raw_element(
                    _STUDY_ID, "SH", study_id, instance.implicit, instance.little)

    def _write_file_meta(self, ds: Dataset) -> None:
        meta = getattr(ds, "file_meta", None)
        if meta is None:
            meta = ds.file_meta = FileMetaDataset()
        elements = meta._dict
        for tag in _META_DROP:
            elements.pop(BaseTag(tag), None)
        # Elements are set directly: FileMetaDataset re-validates on every attribute set.
        for tag, value in (
            (0x00020002, _text_of(ds, _SOP_CLASS_UID)),
            (0x00020003, _text_of(ds, _SOP_INSTANCE_UID)),
            (0x00020012, IMPLEMENTATION_CLASS_UID),
        ):
            if value:
                elements[BaseTag(tag)] = raw_element(
                    tag, "UI", encode_text(value, "UI", "ascii"), False, True)
        elements[BaseTag(0x00020013)] = raw_element(
            0x00020013, "SH", encode_text(IMPLEMENTATION_VERSION_NAME, "SH", "ascii"),
            False, True)


@cache
def _is_standard(tag: int) -> bool:
    """Whether the DICOM dictionary (repeating groups included) knows the public tag."""
    try:
        dictionary_VR(tag)
    except KeyError:
        return False
    return True


def _text_of(ds: Dataset, tag: int) -> str:
    return element_text(ds._dict.get(BaseTag(tag)))


def keeps_uid(tag: int, uid: str) -> bool:
    """Whether de-identification leaves ``uid`` in attribute ``tag`` as it is: an empty or
    well-known DICOM UID, or an attribute naming a class, transfer syntax or coding scheme.

    Exports that replace UIDs again follow the same rule, so both agree on what a UID is.
    """
    return not uid or uid in UID_dictionary or tag in _class_uid_tags()


__all__ = ["IMPLEMENTATION_CLASS_UID", "Deidentifier", "Identity", "keeps_uid"]
