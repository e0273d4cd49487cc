"""When does a value in the inventory look identifying?

A reviewer cannot read 100,000 values; the flags point at the few worth a look. A value is
flagged when it is

- a person name (VR PN) that is not one of the project's participant IDs or event names
  (which the import writes into PatientName and ReferringPhysicianName);
- a date (DA, DT) outside the range of the project's stored, shifted study dates (± 1 day)
  — a date that escaped shifting stands out there;
- text with a run of 6 or more digits, or 8 or more digits spaced like a phone number (an ID,
  a phone or a national identity number), in a
  text VR other than UIDs, numbers and the technical tags below;
- an e-mail address, or text that reads like a street address;
- free text (LO, LT, ST, UT, SH of three or more words) that still carries a capitalised
  word that does not begin a sentence, in a tag that is not a known technical one: prose is
  where people write names, and a name is a capitalised word (text that Clean has cut reads
  ``Patient *** *** scanned`` and is not flagged).

Values of sequences and binary VRs are not read, so they are never flagged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_DIGITS = re.compile(r"\d{6,}")
_PHONE = re.compile(r"(?<!\w)\+?\d(?:[ \-]?\d){7,}(?!\w)")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_ADDRESS = re.compile(r"\b\d{1,4}\s*[A-Za-zÆØÅæøå]+(gata|gate|veien|vegen|vei|street|st\.|road|"
                      r"rd\.|allé|plass)\b|\b(gata|gate|veien|street|road)\s+\d{1,4}\b",
                      re.IGNORECASE)
_NAME_LIKE = re.compile(r"[A-ZÆØÅÄÖÜ][a-zæøåäöüé]+[,.]?")
_TEXT_VRS = frozenset({"LO", "LT", "ST", "UT", "SH", "UC"})
#: Keywords whose text is technical, written by devices, not people.
TECHNICAL = frozenset({
    "ImageType", "Manufacturer", "ManufacturerModelName", "SoftwareVersions", "Modality",
    "ScanningSequence", "SequenceVariant", "ScanOptions", "MRAcquisitionType",
    "SequenceName", "TransmitCoilName", "ReceiveCoilName", "PhotometricInterpretation",
    "BodyPartExamined", "PatientPosition", "InPlanePhaseEncodingDirection",
    "DeidentificationMethod", "CodeMeaning", "CodeValue", "CodingSchemeDesignator",
    "ImplementationVersionName", "SpecificCharacterSet", "ConversionType",
    "WindowCenterWidthExplanation", "LossyImageCompressionMethod", "PatientSex",
    "PositionReferenceIndicator", "ContrastBolusAgent", "ProtocolName", "SeriesDescription",
    "StudyDescription", "PerformedProcedureStepDescription",
    "AcquisitionDeviceProcessingDescription",
    "StudyID", "PatientIdentityRemoved", "LongitudinalTemporalInformationModified",
    "InstitutionName", "PatientID", "PatientName", "PrivateCreator",
})


@dataclass(frozen=True)
class ReviewContext:
    """What the flags compare against: the project's own IDs and its stored date range."""

    allowed_names: frozenset[str]
    first_date: str  # YYYYMMDD of the earliest stored (shifted) study date, "" if none
    last_date: str


def _leaf_keyword(keyword_path: str) -> str:
    return keyword_path.rsplit(">", 1)[-1].split("@", 1)[0]


def _day_before(date: str) -> str:
    import datetime as dt

    try:
        day = dt.date(int(date[:4]), int(date[4:6]), int(date[6:8]))
    except ValueError:
        return date
    return (day - dt.timedelta(days=1)).strftime("%Y%m%d")


def _day_after(date: str) -> str:
    import datetime as dt

    try:
        day = dt.date(int(date[:4]), int(date[4:6]), int(date[6:8]))
    except ValueError:
        return date
    return (day + dt.timedelta(days=1)).strftime("%Y%m%d")


def value_flags(keyword_path: str, vr: str, value: str, context: ReviewContext) -> list[str]:
    """The reasons ``value`` looks identifying (empty when it does not)."""
    if not value or vr in ("SQ", "UI", "OB", "OW", "OF", "OD", "OL", "OV", "UN"):
        return []
    keyword = _leaf_keyword(keyword_path)
    reasons: list[str] = []
    if vr == "PN":
        if any(v not in context.allowed_names for v in value.split("\\") if v):
            reasons.append("person name")
        return reasons
    if vr in ("DA", "DT"):
        if context.first_date:
            low, high = _day_before(context.first_date), _day_after(context.last_date)
            for date in value.split("\\"):
                if date and not low <= date[:8] <= high:
                    reasons.append("date outside the project's shifted study dates")
                    break
        return reasons
    if vr in ("IS", "DS", "US", "SS", "UL", "SL", "FL", "FD", "TM", "AS", "AT", "UV", "SV"):
        return reasons
    if keyword in TECHNICAL and keyword not in ("PatientID",):
        return reasons
    if _EMAIL.search(value):
        reasons.append("e-mail address")
    if _ADDRESS.search(value):
        reasons.append("looks like a street address")
    if (_DIGITS.search(value) or _PHONE.search(value)) and keyword not in ("PatientID",
                                                                             "StudyID"):
        reasons.append("long run of digits (an ID or phone number?)")
    words = value.split()
    if vr in _TEXT_VRS and len(words) >= 3 and any(
        _NAME_LIKE.fullmatch(word) and words[i][-1:] not in ".!?:"
        for i, word in enumerate(words[1:])
    ):
        reasons.append("free text with capitalised words (names?)")
    return reasons


def flags_for(keyword_path: str, vr: str, values: Iterable[str],
              context: ReviewContext) -> list[str]:
    reasons: list[str] = []
    for value in values:
        for reason in value_flags(keyword_path, vr, value, context):
            if reason not in reasons:
                reasons.append(reason)
    return reasons
