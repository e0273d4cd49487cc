"""Clean (PS3.15 action C) for text: keep the text, cut out what identifies.

A :class:`TextCleaner` is built from one instance's own identifying values *before* they are
removed, and replaces with ``***``, case-insensitively:

- each part (of two or more characters) of PatientName (all components: family, given,
  middle, prefix, suffix; also its ideographic and phonetic groups), OtherPatientNames,
  PatientBirthName, PatientMotherBirthName and ResponsiblePerson;
- PatientID, OtherPatientIDs, the IDs in OtherPatientIDsSequence, AccessionNumber;
- the words of PatientAddress of four or more characters that are not bare numbers (street
  and place names; a house or postal number alone identifies no one);
- PatientBirthDate written as YYYYMMDD, YYYY-MM-DD, YYYY.MM.DD, YYYY/MM/DD, DD.MM.YYYY,
  DD/MM/YYYY, DD-MM-YYYY, MM/DD/YYYY, DDMMYY, DD.MM.YY;

values of four or more characters wherever they occur (also inside a word: ``Testesens``),
shorter ones only as a whole word, not next to a letter or digit (so that a patient called
``Al`` does not cut ``Axial`` to pieces); and, whoever they belong to:

- 11-digit national identity numbers (Norwegian fødselsnummer style, ``DDMMYY NNNNN``, with
  or without one space), not part of a longer digit run;
- UIDs (:data:`UID_IN_TEXT`): five or more numeric components from a root arc, or a
  ``2.25.`` UUID-derived one;
- dates: ``YYYYMMDD`` and ``YYYY-MM-DD`` (also with ``.`` or ``/``) for years 1900-2099, and
  ``DD.MM.YYYY``, ``DD/MM/YYYY``, ``DD-MM-YYYY``, ``DD.MM.YY`` (also ``MM/DD/YYYY``), not
  part of a longer digit run;
- e-mail addresses;
- phone numbers and other long numbers: 8 or more digits, together or in groups of two or
  more with single spaces or dashes between them, optionally with a leading ``+`` (not
  within a decimal number); not a run of groups that all end in 0, which is how b-values
  and delays are listed (:data:`~rpacs.deid.patterns.PHONE_NUMBER`).

Text is scanned once, leftmost match first; where a pattern and one of the instance's values
start at the same place, the pattern wins (a national identity number goes whole, not only
its birth-date part). The engine cuts each cleaned value to its VR's maximum length.

Binary values (a Siemens CSA header) are cleaned with a same-length ``*`` run per match, so
that offsets inside the binary structure stay valid; there only the instance's own values
(as UTF-8 and as Latin-1 bytes, in upper, lower and their own case; ASCII letters in any
case) — its dates (StudyDate, SeriesDate, AcquisitionDate, ContentDate, in the birth
date's spellings of eight characters or more) among them — national identity numbers and
UIDs are cut, because such blobs carry
technical numbers as text (protocol parameters, slice times).
"""

from __future__ import annotations

import re
from contextlib import suppress
from functools import lru_cache

from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from . import quiet  # noqa: F401  (pydicom's value warnings off)
from .patterns import PHONE_NUMBER

REPLACEMENT = "***"

#: A DICOM UID written into text: five or more numeric components, the first 0, 1 or 2
#: (the root arcs), or a UUID-derived ``2.25.`` one; not inside a longer dotted number. Any
#: UID: the instance's own and a referenced study's alike lead back to the hospital's PACS,
#: and a vendor's UID often spells the acquisition's date and time. Not the standard's own
#: (1.2.840.10008…: SOP classes, transfer syntaxes), which say nothing of anyone.
#: Components as vendors write them, leading zeros too (a time of day, ``.0930``), and
#: letters may touch it (``IM_1.3.12…_0001.dcm``).
UID_IN_TEXT = (r"(?<![\d.])(?!1\.2\.840\.10008(?!\d))"
               r"(?:[0-2](?:\.\d+){4,}|2\.25\.\d{10,})(?!\d|\.\d)")

_PATTERNS = [
    r"(?<!\d)\d{6} ?\d{5}(?!\d)",  # 11-digit national identity number
    UID_IN_TEXT,
    r"(?<!\d)(?:19|20)\d{2}([-./]?)(?:0[1-9]|1[0-2])\1(?:0[1-9]|[12]\d|3[01])(?!\d)",  # YMD
    r"(?<!\d)(?<!\d\.)(?:0?[1-9]|[12]\d|3[01])([-./])(?:0?[1-9]|1[0-2])\2(?:\d{4}|\d{2})"
    r"(?!\d|\.\d)",  # D M Y
    r"(?<!\d)(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])/\d{4}(?!\d)",  # M/D/Y
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+",  # e-mail
    PHONE_NUMBER,  # phone numbers, other long numbers
]
_STATIC_SOURCE = "|".join(f"(?:{p})" for p in _PATTERNS)
#: Values shorter than this are matched as whole words only.
_WHOLE_WORD_BELOW = 4


def _birth_date_spellings(value: str) -> list[str]:
    v = value.strip()
    if len(v) != 8 or not v.isdigit():
        return [v] if v else []
    y, m, d = v[:4], v[4:6], v[6:]
    return [v, f"{y}-{m}-{d}", f"{y}.{m}.{d}", f"{y}/{m}/{d}", f"{d}.{m}.{y}", f"{d}/{m}/{y}",
            f"{d}-{m}-{y}", f"{m}/{d}/{y}", f"{d}{m}{y[2:]}", f"{d}.{m}.{y[2:]}"]


def _name_parts(value: object) -> list[str]:
    return [p for p in re.split(r"[\^=\s,]+", str(value)) if len(p) >= 2]


def identifying_values(ds: Dataset) -> tuple[str, ...]:
    """The instance's own identifying strings that Clean must cut out, longest first."""
    values: list[str] = []
    for keyword in ("PatientName", "OtherPatientNames", "PatientBirthName",
                    "PatientMotherBirthName", "ResponsiblePerson"):
        for name in value_list(ds[keyword].value) if keyword in ds else []:
            values.extend(_name_parts(name))
    for keyword in ("PatientID", "OtherPatientIDs", "AccessionNumber"):
        if keyword in ds:
            values.extend(str(v).strip() for v in value_list(ds[keyword].value))
    for item in ds.get("OtherPatientIDsSequence", None) or []:
        if "PatientID" in item:
            values.append(str(item.PatientID).strip())
    if "PatientAddress" in ds:
        # Street and place names; a bare house or postal number alone identifies no one.
        values.extend(p for p in re.split(r"[\s,;:/\\^]+", str(ds.PatientAddress or ""))
                      if len(p) >= _WHOLE_WORD_BELOW and not p.isdigit())
    if "PatientBirthDate" in ds:
        values.extend(_birth_date_spellings(str(ds.PatientBirthDate or "")))
    # The instance's own dates, as a vendor's blob writes them (sStudyDate = "20210517",
    # tDate = 2021-05-17): text loses every date by pattern, a binary value only these, in
    # the spellings of eight digits or more (six-digit ones are too like other numbers).
    for keyword in _OWN_DATES:
        if keyword in ds:
            for date in (str(v).strip() for v in value_list(ds[keyword].value)):
                if len(date) == 8 and date.isdigit():
                    values.extend(s for s in _birth_date_spellings(date) if len(s) >= 8)
    return tuple(sorted({v for v in values if len(v) >= 2}, key=lambda v: (-len(v), v)))


def value_list(value: object) -> list[object]:
    """A DICOM value as a list: [] when empty, its items when multi-valued."""
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    return [value]


_OWN_DATES = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")
#: The elements identifying_values reads (and SpecificCharacterSet, which decodes them).
_IDENTIFYING_TAGS = (0x00100010, 0x00101001, 0x00101005, 0x00101060, 0x00102297, 0x00100020,
                     0x00101000, 0x00080050, 0x00101002, 0x00101040, 0x00100030, 0x00080005,
                     0x00080020, 0x00080021, 0x00080022, 0x00080023)
_CLEANERS: dict[tuple, TextCleaner] = {}


def _key_part(element: object) -> object:
    """A hashable stand-in for one identifying element's value."""
    if element is None:
        return None
    if type(element) is RawDataElement:
        return (element.VR, element.value)
    value = element.value  # type: ignore[attr-defined]
    if isinstance(value, Sequence):
        return tuple(str(item.get("PatientID", "")) for item in value)
    return (element.VR, str(value))  # type: ignore[attr-defined]


class TextCleaner:
    """Replaces an instance's identifying values and identifying patterns in text."""

    def __init__(self, values: tuple[str, ...]):
        self.values = values
        self._text = _compiled(values)
        self._own = _compiled_own(values)
        self._binary_forms = _binary_forms(values)

    @classmethod
    def from_dataset(cls, ds: Dataset) -> TextCleaner:
        """The cleaner of ``ds``'s own values (shared by the instances of one patient)."""
        elements = ds._dict
        key = tuple(_key_part(elements.get(tag)) for tag in _IDENTIFYING_TAGS)
        cached = _CLEANERS.get(key)
        if cached is None:
            if len(_CLEANERS) > 1000:
                _CLEANERS.clear()
            cached = _CLEANERS[key] = cls(identifying_values(ds))
        return cached

    def clean(self, text: str) -> str:
        """``text`` with each identifying value and pattern replaced by ``***``."""
        return self._text.sub(REPLACEMENT, text) if text else text

    def clean_own_values(self, text: str) -> str:
        """``text`` with only the instance's own identifying values replaced by ``***``.

        For short technical text (LO, SH, UC values the table does not list: coil names,
        code values, software versions) the patterns would cut legitimate numbers and codes,
        while the patient's own name, ID or birth date never belongs there.
        """
        if not text or self._own is None:
            return text
        return self._own.sub(REPLACEMENT, text)

    def clean_bytes(self, data: bytes) -> bytes:
        """Same-length replacement inside a binary blob (its structure keeps its offsets).

        The values are looked for as UTF-8 and as Latin-1 bytes: a vendor blob does not say
        which character set wrote it. ASCII letters match in any case; a value shorter
        than four characters only where no ASCII letter or digit adjoins it; a national
        identity number wins over a value starting at the same byte. What is cut is what
        one leftmost-first scan with those alternatives, in that order and the longer
        value first, would cut (:func:`byte_matches`).
        """
        if not data:
            return data
        spans = byte_matches(data, self._binary_forms)
        if not spans:
            return data
        out = bytearray(data)
        for start, end in spans:
            out[start:end] = b"*" * (end - start)
        return bytes(out)


#: Every ASCII digit as "0" and every other byte but the space as "x": a digit run is then a
#: run of zeros, found by a plain search.
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= b <= 0x39 else b if b == 0x20 else 0x78
                         for b in range(256))
_ID_NUMBER_BYTES = re.compile(_PATTERNS[0].encode("ascii"))
_UID_BYTES = re.compile(UID_IN_TEXT.encode("ascii"))  # \w and \d: ASCII ones in bytes
#: Where nearly every UID in use begins (ISO member bodies such as 1.2.840 and 1.2.578,
#: identified organisations such as Siemens' 1.3.12, joint ISO-ITU countries, UUIDs): a
#: blob is searched for these (in C, 0.04 ms per 100 kB each) and a UID is matched only
#: there. A regular expression tried at every byte cost 3.6 ms per 100 kB header.
_UID_ROOTS = (b"1.2.", b"1.3.", b"2.16.", b"2.25.")
#: The bytes a short value must not adjoin (``[A-Za-z0-9]``).
_ALNUM = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def byte_matches(data: bytes, forms: tuple[tuple[bytes, bool], ...]) -> list[tuple[int, int]]:
    """The spans of ``data`` a binary clean cuts: national identity numbers and ``forms``.

    ``forms``: each value's spellings as bytes in ASCII lower case, longest first, and
    whether it is short (matched only where no ASCII letter or digit adjoins). Every
    occurrence of every alternative is found with plain searches of the ASCII-lowered
    blob, in C; the spans are then chosen as a leftmost-first scan of the alternatives
    in order would choose them — at each start, a national identity number, else the
    longest value — each scan resuming after the span it took. A regular expression
    of the same alternatives does that in one pass, but tries each of them at each byte:
    four times slower on a 10 kB CSA header that holds the patient's name.
    """
    lowered = data.lower()
    found: list[tuple[int, int, int]] = []  # (start, rank, end)
    for rank, (form, short) in enumerate(forms, 1):
        at = lowered.find(form)
        while at >= 0:
            end = at + len(form)
            if not short or ((at == 0 or data[at - 1] not in _ALNUM)
                             and (end == len(data) or data[end] not in _ALNUM)):
                found.append((at, rank, end))
            at = lowered.find(form, at + 1)
    digits = data.translate(_DIGITS_AS_ZEROS)
    if b"00000000000" in digits or b"000000 00000" in digits:
        # What every national identity number holds; the pattern checks the rest.
        found += [(m.start(), 0, m.end()) for m in _ID_NUMBER_BYTES.finditer(data)]
    for root in _UID_ROOTS:
        at = data.find(root)
        while at >= 0:
            match = _UID_BYTES.match(data, at)
            if match:
                found.append((at, 0, match.end()))
            at = data.find(root, at + 1)
    if not found:
        return []
    found.sort()
    spans: list[tuple[int, int]] = []
    position = 0
    for start, _, end in found:
        if start >= position:
            spans.append((start, end))
            position = end
    return spans


def _bounded(literal: str, length: int, word: str) -> str:
    """A value's pattern: anywhere when long, as a whole word when short."""
    if length >= _WHOLE_WORD_BELOW:
        return literal
    return f"(?<!{word}){literal}(?!{word})"


@lru_cache(maxsize=256)
def _byte_forms(values: tuple[str, ...]) -> dict[bytes, int]:
    """Each value as UTF-8 and as Latin-1 bytes, in its own, upper and lower case, with
    the length of the value it spells."""
    forms: dict[bytes, int] = {}
    for value in values:
        for text in (value, value.upper(), value.lower()):
            forms[text.encode("utf-8")] = len(value)
            with suppress(UnicodeEncodeError):
                forms[text.encode("latin-1")] = len(value)
    return forms


@lru_cache(maxsize=256)
def _binary_forms(values: tuple[str, ...]) -> tuple[tuple[bytes, bool], ...]:
    """:func:`byte_matches`'s forms: every spelling of the values in ASCII lower case (the
    case-insensitive comparison of bytes), longest first, with whether it is short (only
    when every value spelt so is: one that is not matches anywhere)."""
    forms: dict[bytes, bool] = {}
    for form, length in _byte_forms(values).items():
        lowered = form.lower()
        forms[lowered] = forms.get(lowered, True) and length < _WHOLE_WORD_BELOW
    return tuple(sorted(forms.items(), key=lambda item: (-len(item[0]), item[0])))


@lru_cache(maxsize=256)
def _compiled_own(values: tuple[str, ...]) -> re.Pattern[str] | None:
    if not values:
        return None
    return re.compile("|".join(_bounded(re.escape(v), len(v), r"[^\W_]") for v in values),
                      re.IGNORECASE)


@lru_cache(maxsize=256)
def _compiled(values: tuple[str, ...]) -> re.Pattern[str]:
    # One pass, leftmost match first; where a pattern and a value start at the same place
    # the pattern wins, so that a national identity number goes whole and not only its
    # birth-date part. Patients recur file after file: compiled once per patient.
    parts = [_STATIC_SOURCE]
    parts += [_bounded(re.escape(v), len(v), r"[^\W_]") for v in values]
    return re.compile("|".join(parts), re.IGNORECASE)
