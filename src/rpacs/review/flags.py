"""When does a value in the inventory look identifying?

A reviewer cannot read 100,000 values; the flags point at the few worth a look. Values that
rpacs itself wrote by design are never flagged: the project's participant IDs (PatientID,
PatientName), event names (ReferringPhysicianName), its acronym (InstitutionName), the
StudyIDs derived from the new StudyInstanceUIDs, and the de-identifier's dummy values
(``ANONYMOUS``, ``ANONYMIZED``, ``19000101``). Any other value is flagged when it is

- a person name (VR PN);
- a PatientID that is not one of the project's participant IDs;
- a date (DA, DT) more than 30 days outside the range of the project's stored, shifted
  study dates (:data:`DATE_MARGIN_DAYS`) — a date that escaped shifting stands out there
  (no study dates yet: no date flags);
- text with a run of 6 or more digits, or 8 or more digits spaced like a phone number (an
  ID, a phone or a national identity number; not a list of round numbers such as b-values:
  :data:`~rpacs.deid.patterns.PHONE_NUMBER`), except in code strings (CS) and in tags that
  devices write (:data:`DEVICE_TEXT`: code values and versions hold long numbers); UIDs
  and numbers are never text;
- an e-mail address, or text that reads like a street address, in any text tag;
- free text (LO, LT, SH, ST, UC, UT of three or more words) that still carries a capitalised
  word that does not begin a sentence: prose is where people write names, and a name is a
  capitalised word. Text that Clean has cut reads ``Patient *** *** scanned`` and is not
  flagged. Descriptions of studies, series and protocols (:data:`DESCRIPTIONS`) are exempt
  from this one check only — they are capitalised technical phrases by habit, and Clean
  Descriptors already cut the instance's own names out of them — but a digit run, e-mail or
  address in them is still flagged.

- a value of a number, time or age (IS, DS, TM, AS) that is not one (:data:`NUMBER_FORMS`):
  a name typed into PatientWeight is stored as it is, since the profile keeps the element.

Values of sequences and binary VRs are never read, so they are never flagged.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..deid.patterns import PHONE_NUMBER

#: A number as written in text: digits, with dotted parts (a decimal, a UID, a version).
_NUMBER = re.compile(r"(?<!\d)(?<!\d\.)\d+(?:\.\d+)*")


def _long_number(value: str) -> bool:
    """Whether ``value`` holds a run of 6 or more digits that may be an ID: in a whole
    number, a decimal's whole part, or any part of a dotted one (a UID typed into text) —
    not in a decimal's fraction (a compression ratio of 0.0849061)."""
    for match in _NUMBER.finditer(value):
        parts = match.group().split(".")
        if any(len(part) >= 6 for part in (parts[:1] if len(parts) == 2 else parts)):
            return True
    return False


_PHONE = re.compile(PHONE_NUMBER)
# Every pattern here fails in linear time, however long the value (a UT may hold
# megabytes): an e-mail is looked for only where a run of its characters starts, and a
# DS's digits before and after its point are told apart by the point.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+\.[\w.-]+")
_ADDRESS = re.compile(
    # Norwegian compound street names with a number: Storgata 12, Kirkeveien 5B, Fjellvn. 3
    r"\b\w*(?i:gata|gaten|gate|veien|vegen|vei|veg|allé|alle|plass|vn\.|gt\.)\s+\d{1,4}"
    r"[A-Za-z]?\b"
    # English: 12 Baker Street, 7 Elm Rd.
    r"|\b\d{1,4}\s+[A-Z][a-z]+\s+(?i:street|st\.|road|rd\.|avenue|ave\.|lane|drive)"
)
_NAME_LIKE = re.compile(r"[A-ZÆØÅÄÖÜ][a-zæøåäöüé]+[,.]?")
_FREE_TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UC", "UT"})
#: VRs never flagged: UIDs, binary numbers, tags, sequences and binary values.
_NEVER_FLAGGED_VRS = frozenset({
    "UI", "US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT",
    "SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN",
})
#: The forms of the VRs written as text but holding a number, a time or an age (PS3.5
#: 6.2), each of several values: anything else is text typed where it does not belong.
NUMBER_FORMS = {
    "IS": re.compile(r" *[+-]?\d+(?:\.0*)? *"),  # 1.0: not PS3.5's, but common and a number
    "DS": re.compile(r" *[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)? *"),
    "TM": re.compile(r"\d{2}(?::?\d{2}(?::?\d{2}(?:\.\d{1,6})?)?)? *"),
    "AS": re.compile(r"\d{3}[DWMY]"),
}
#: The de-identifier's dummy values (action D), which say nothing about anyone.
DUMMY_VALUES = frozenset({"ANONYMOUS", "ANONYMIZED", "19000101", "19000101000000"})
#: Text written by devices and by rpacs itself, not by people: never flagged.
DEVICE_TEXT = frozenset({
    "ImageType", "Manufacturer", "ManufacturerModelName", "SoftwareVersions", "Modality",
    "ScanningSequence", "SequenceVariant", "ScanOptions", "MRAcquisitionType",
    "SequenceName", "TransmitCoilName", "ReceiveCoilName", "PhotometricInterpretation",
    "BodyPartExamined", "PatientPosition", "InPlanePhaseEncodingDirection",
    "DeidentificationMethod", "CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion",
    "ImplementationVersionName", "SpecificCharacterSet", "ConversionType",
    "LossyImageCompressionMethod", "PatientSex", "PatientIdentityRemoved",
    "LongitudinalTemporalInformationModified", "PrivateCreator", "PixelPresentation",
    "VolumetricProperties", "VolumeBasedCalculationTechnique", "ComplexImageComponent",
    "AcquisitionContrast", "PositionReferenceIndicator",
})
#: Capitalised technical phrases typed into consoles; exempt from the free-text check only.
DESCRIPTIONS = frozenset({
    "StudyDescription", "SeriesDescription", "ProtocolName", "PerformedProcedureStepDescription",
    "RequestedProcedureDescription", "ScheduledProcedureStepDescription",
    "AcquisitionDeviceProcessingDescription", "CodeMeaning", "WindowCenterWidthExplanation",
    "ContrastBolusAgent", "DerivationDescription",
})


#: Days either side of the study dates in which a date is not flagged: a series or an
#: instance made days after its study (a reconstruction, a report) is shifted like it,
#: while a date left unshifted lies a year or more away (the shift is 365 to 3,650 days).
DATE_MARGIN_DAYS = 30


@dataclass(frozen=True)
class ReviewContext:
    """What the flags compare against: the project's own identifiers and its date range."""

    #: Participant IDs, event names, the acronym and derived StudyIDs: written by rpacs.
    own_values: frozenset[str]
    #: YYYYMMDD of the earliest and latest stored (shifted) study date, "" if none.
    first_date: str
    last_date: str

    @property
    def date_range(self) -> tuple[str, str] | None:
        """The dates no flag is raised for: the study dates ± :data:`DATE_MARGIN_DAYS`
        (None: no dates yet)."""
        if not self.first_date:
            return None
        return (_shift_day(self.first_date, -DATE_MARGIN_DAYS),
                _shift_day(self.last_date, +DATE_MARGIN_DAYS))


def _shift_day(date: str, days: int) -> str:
    try:
        day = dt.date(int(date[:4]), int(date[4:6]), int(date[6:8]))
    except ValueError:
        return date
    return (day + dt.timedelta(days=days)).strftime("%Y%m%d")


def leaf_keyword(keyword_path: str) -> str:
    """``ReferencedImageSequence>ReferencedSOPInstanceUID`` → ``ReferencedSOPInstanceUID``."""
    return keyword_path.rsplit(">", 1)[-1].split("@", 1)[0]


def can_flag(vr: str) -> bool:
    """Whether any value of this VR can be flagged (so whether its values need reading)."""
    return vr not in _NEVER_FLAGGED_VRS


def value_flags(keyword_path: str, vr: str, value: str, context: ReviewContext) -> list[str]:
    """The reasons ``value`` looks identifying (empty when it does not)."""
    if not value or not can_flag(vr) or value in context.own_values or value in DUMMY_VALUES:
        return []
    keyword = leaf_keyword(keyword_path)
    parts = [v for v in value.split("\\") if v]
    form = NUMBER_FORMS.get(vr)
    if form is not None:
        if any(not form.fullmatch(p) for p in parts):
            return [f"not a valid {vr} value (text where a number, time or age belongs)"]
        return []
    if vr == "PN":
        if any(p not in context.own_values and p not in DUMMY_VALUES for p in parts):
            return ["person name"]
        return []
    if vr in ("DA", "DT"):
        window = context.date_range
        if window and any(p not in DUMMY_VALUES and not window[0] <= p[:8] <= window[1]
                          for p in parts):
            return ["date outside the project's shifted study dates"]
        return []
    if keyword == "PatientID":
        return ["PatientID is not a participant ID of the project"]
    reasons: list[str] = []
    # No device writes an e-mail or street address, whatever the tag: a person typed it.
    if _EMAIL.search(value):
        reasons.append("e-mail address")
    if _ADDRESS.search(value):
        reasons.append("looks like a street address")
    if keyword in DEVICE_TEXT:
        return reasons
    if vr != "CS" and (_long_number(value) or _PHONE.search(value)):
        reasons.append("long run of digits (an ID or phone number?)")
    words = value.split()
    if vr in _FREE_TEXT_VRS and keyword not in DESCRIPTIONS and len(words) >= 3 and any(
        _NAME_LIKE.fullmatch(word) and words[i][-1:] not in ".!?:"
        for i, word in enumerate(words[1:])
    ):
        reasons.append("free text with capitalised words (names?)")
    return reasons


def flags_for(keyword_path: str, vr: str, values: Iterable[str],
              context: ReviewContext) -> list[str]:
    """The distinct reasons over ``values``, in the order first met."""
    reasons: list[str] = []
    for value in values:
        for reason in value_flags(keyword_path, vr, value, context):
            if reason not in reasons:
                reasons.append(reason)
    return reasons
