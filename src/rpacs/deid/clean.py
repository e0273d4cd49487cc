"""Clean (PS3.15 action C) for text: keep the text, cut out what identifies.

A :class:`TextCleaner` is built from one instance's own identifying values *before* they are
removed, and replaces with ``***``, case-insensitively:

- each part (of two or more characters) of PatientName (all components: family, given,
  middle, prefix, suffix; also its ideographic and phonetic groups) and of OtherPatientNames;
- PatientID, OtherPatientIDs, the IDs in OtherPatientIDsSequence, AccessionNumber;
- PatientBirthDate written as YYYYMMDD, YYYY-MM-DD, YYYY.MM.DD, YYYY/MM/DD, DD.MM.YYYY,
  DD/MM/YYYY, DD-MM-YYYY, MM/DD/YYYY, DDMMYY, DD.MM.YY;

and, whoever they belong to:

- 11-digit national identity numbers (Norwegian fødselsnummer style, ``DDMMYY NNNNN``, with
  or without a space);
- dates in the spellings above (any date, not only the birth date);
- e-mail addresses and phone numbers (8 or more digits, with optional ``+``, spaces, dashes).

Binary values (a Siemens CSA header) are cleaned with a same-length ``*`` run per match, so
that offsets inside the binary structure stay valid; there only the instance's own values and
national identity numbers are cut, because such blobs carry technical numbers as text.
"""

from __future__ import annotations

import re
from contextlib import suppress
from functools import lru_cache

from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.multival import MultiValue

REPLACEMENT = "***"

_PATTERNS = [
    r"\b\d{6}\s?\d{5}\b",  # 11-digit national identity number
    r"\b(?:19|20)\d{2}[-./]?(?:0[1-9]|1[0-2])[-./]?(?:0[1-9]|[12]\d|3[01])\b",  # Y M D
    r"\b(?:0?[1-9]|[12]\d|3[01])[-./](?:0?[1-9]|1[0-2])[-./](?:\d{4}|\d{2})\b",  # D M Y
    r"\b(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])/\d{4}\b",  # M/D/Y
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+",  # e-mail
    r"(?<!\w)\+?\d[\d \-]{6,}\d(?!\w)",  # phone numbers and other long digit runs
]
_STATIC = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.IGNORECASE)
# Binary blobs hold technical numbers as text (ASCCONV protocols, slice times): there only the
# instance's own values and national identity numbers are cut, not every long digit run.
_STATIC_BINARY = re.compile(_PATTERNS[0].encode())


def _birth_date_spellings(value: str) -> list[str]:
    v = value.strip()
    if len(v) != 8 or not v.isdigit():
        return [v] if v else []
    y, m, d = v[:4], v[4:6], v[6:]
    return [v, f"{y}-{m}-{d}", f"{y}.{m}.{d}", f"{y}/{m}/{d}", f"{d}.{m}.{y}", f"{d}/{m}/{y}",
            f"{d}-{m}-{y}", f"{m}/{d}/{y}", f"{d}{m}{y[2:]}", f"{d}.{m}.{y[2:]}"]


def identifying_values(ds: Dataset) -> tuple[str, ...]:
    """The instance's own identifying strings that Clean must cut out."""
    values: list[str] = []
    for keyword in ("PatientName", "OtherPatientNames"):
        for name in value_list(ds[keyword].value) if keyword in ds else []:
            values.extend(p for p in re.split(r"[\^=\s,]+", str(name)) if len(p) >= 2)
    for keyword in ("PatientID", "OtherPatientIDs", "AccessionNumber"):
        if keyword in ds:
            values.extend(str(v).strip() for v in value_list(ds[keyword].value))
    for item in ds.get("OtherPatientIDsSequence", None) or []:
        if "PatientID" in item:
            values.append(str(item.PatientID).strip())
    if "PatientBirthDate" in ds:
        values.extend(_birth_date_spellings(str(ds.PatientBirthDate or "")))
    return tuple(sorted({v for v in values if len(v) >= 2}, key=lambda v: (-len(v), v)))


def value_list(value: object) -> list[object]:
    """A DICOM value as a list: [] when empty, its items when multi-valued."""
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    return [value]


#: PatientName, OtherPatientNames, PatientID, OtherPatientIDs, AccessionNumber,
#: OtherPatientIDsSequence, PatientBirthDate, SpecificCharacterSet (decodes the others).
_IDENTIFYING_TAGS = (0x00100010, 0x00101001, 0x00100020, 0x00101000, 0x00080050, 0x00101002,
                     0x00100030, 0x00080005)
_CLEANERS: dict[tuple, TextCleaner] = {}


class TextCleaner:
    """Replaces an instance's identifying values and identifying patterns in text."""

    def __init__(self, values: tuple[str, ...]):
        self.values = values
        self._own = _compiled(values)

    @classmethod
    def from_dataset(cls, ds: Dataset) -> TextCleaner:
        # The same patient's elements recur file after file: key on their raw bytes.
        raws = [ds.get_item(tag) for tag in _IDENTIFYING_TAGS]
        if all(r is None or isinstance(r, RawDataElement) for r in raws):
            key = tuple(None if r is None else (r.VR, r.value) for r in raws)
            cached = _CLEANERS.get(key)
            if cached is None:
                if len(_CLEANERS) > 1000:
                    _CLEANERS.clear()
                cached = _CLEANERS[key] = cls(identifying_values(ds))
            return cached
        return cls(identifying_values(ds))

    def clean(self, text: str) -> str:
        if not text:
            return text
        if self._own is not None:
            text = self._own.sub(REPLACEMENT, text)
        return _STATIC.sub(REPLACEMENT, text)

    def clean_bytes(self, data: bytes) -> bytes:
        """Same-length replacement inside a binary blob (its structure keeps its offsets).

        The values are looked for as UTF-8 and as Latin-1 bytes: a vendor blob does not say
        which character set wrote it.
        """
        own = _compiled_bytes(self.values)
        if own is not None:
            data = own.sub(_stars, data)
        return _STATIC_BINARY.sub(_stars, data)


def _stars(match: re.Match[bytes]) -> bytes:
    return b"*" * len(match.group(0))


@lru_cache(maxsize=256)
def _compiled_bytes(values: tuple[str, ...]) -> re.Pattern[bytes] | None:
    forms: set[bytes] = set()
    for value in values:
        for text in (value, value.upper(), value.lower()):
            forms.add(text.encode("utf-8"))
            with suppress(UnicodeEncodeError):
                forms.add(text.encode("latin-1"))
    if not forms:
        return None
    ordered = sorted(forms, key=lambda f: (-len(f), f))
    return re.compile(b"|".join(re.escape(f) for f in ordered), re.IGNORECASE)


@lru_cache(maxsize=256)
def _compiled(values: tuple[str, ...]) -> re.Pattern[str] | None:
    # Patients recur file after file: compile each patient's pattern once per process.
    if not values:
        return None
    return re.compile("|".join(re.escape(v) for v in values), re.IGNORECASE)
