"""DICOM encoding of data elements, shared by the engine and the writer (PS3.5 section 7).

The engine works on values as the bytes they were read as, and hands back new elements as
pydicom ``RawDataElement`` objects already encoded in the dataset's transfer syntax and
character set. The writer then only lays headers in front of bytes: no element is converted
to a Python value and back unless rpacs changed it. Elements pydicom has already converted
(or that a caller built in memory) are encoded here for the common cases and by pydicom's
own writer otherwise, so every element can be written.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from functools import cache
from operator import itemgetter

from pydicom import Dataset
from pydicom.charset import python_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr_element, write_data_element
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

from . import quiet  # noqa: F401  (pydicom's value warnings off)

#: Explicit VR encodings with a 4-byte length (PS3.5 Table 7.1-1).
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT"})
#: VRs whose value is character text (PS3.5 6.2), possibly multi-valued with backslashes.
TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST",
                      "TM", "UC", "UI", "UR", "UT"})
#: Text VRs whose value is one value: a backslash in them is text, not a separator.
SINGLE_VALUED_VRS = frozenset({"LT", "ST", "UR", "UT"})
#: VRs stored as binary numbers, and their size.
NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d",
                  "UV": "Q", "SV": "q", "AT": "HH"}
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
#: Maximum length of one value in characters (PS3.5 Table 6.2-1); text is cut to these.
MAX_LENGTH = {"AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "DT": 26, "IS": 12, "LO": 64,
              "LT": 10240, "PN": 64, "SH": 16, "ST": 1024, "TM": 14, "UC": 0xFFFFFFFE,
              "UI": 64, "UR": 0xFFFFFFFE, "UT": 0xFFFFFFFE}
UNDEFINED_LENGTH = 0xFFFFFFFF
#: VR → (its two bytes, whether its explicit header has a 4-byte length).
_HEADER_KINDS = {vr: (vr.encode(), vr in LONG_VRS) for vr in (
    "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF",
    "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN",
    "UR", "US", "UT", "UV")}
_first = itemgetter(0)
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD


@cache
def public_vr(tag: int) -> str:
    """The dictionary VR of a public tag ("UN" when unknown); the first of ambiguous ones."""
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"
    if " or " in vr:
        return "OW" if "OW" in vr else vr.split(" or ")[0]
    return vr


def effective_vr(element: RawDataElement | DataElement, tag: int) -> str:
    """The VR to act on: the element's own, the dictionary's when implicit or UN."""
    vr = element.VR
    if vr and vr != "UN" and " or " not in vr:
        return vr
    if tag >> 16 & 1:
        return vr if vr and " or " not in vr else "UN"
    known = public_vr(tag)
    return known if known != "UN" or not vr else vr


@cache
def vr_acted_on(vr: str | None, tag: int) -> str:
    """:func:`effective_vr` of an element read with ``vr`` (None: implicit VR), by its VR
    and tag alone (for byte-level walks that make no element)."""
    return effective_vr(RawDataElement(BaseTag(tag), vr, 0, b"", 0, vr is None, True), tag)


#: The Specific Character Set terms of the default repertoire (ASCII).
DEFAULT_REPERTOIRE = frozenset({"", "ISO_IR 6", "ISO 2022 IR 6"})


def charset_terms(element: RawDataElement | DataElement | None) -> list[str]:
    """The defined terms of a Specific Character Set element ([] when there is none)."""
    if element is None:
        return []
    if isinstance(element, RawDataElement):
        terms = (element.value or b"").decode("latin-1").strip(" \x00").split("\\")
    else:
        value = element.value
        terms = list(value) if isinstance(value, MultiValue | list) else [str(value or "")]
    return [str(t).strip() for t in terms]


def text_codec(ds: Dataset, inherited: str | None = "latin-1") -> str | None:
    """The Python codec that decodes every text value of ``ds``, or None.

    None means the data set switches character sets with ISO 2022 escape sequences (or
    names one Python does not know), which only pydicom's own decoder gets right. A data
    set without Specific Character Set has its parent's (the top level's default is
    ASCII, read as Latin-1 so that stray bytes round-trip).
    """
    element = ds._dict.get(BaseTag(0x00080005))
    if element is None:
        return inherited
    terms = charset_terms(element)
    if len(terms) > 1 and any(terms[1:]):
        return None
    term = terms[0] if terms else ""
    if term in DEFAULT_REPERTOIRE:
        return "latin-1"
    if term.startswith("ISO 2022") or term == "ISO_IR 13" or term not in python_encoding:
        return None
    return "utf-8" if term == "ISO_IR 192" else python_encoding[term]


def decode_text(value: bytes | None, codec: str) -> str:
    """Bytes to text, undecodable bytes kept (as surrogates) so that encoding restores them."""
    return (value or b"").decode(codec, "surrogateescape")


def encode_text(text: str, vr: str, codec: str) -> bytes:
    """Text to an even-length value: UIDs padded with NUL, other text with a space."""
    codec = "ascii" if vr == "UI" else codec
    try:
        data = text.encode(codec, "surrogateescape")
    except UnicodeEncodeError:
        # A character the data set's character set cannot hold (in a value rpacs writes):
        # "?" for it, as pydicom does, rather than a second character set.
        data = text.encode(codec, "replace")
    if len(data) % 2:
        data += b"\x00" if vr == "UI" else b" "
    return data


def split_values(text: str, vr: str) -> list[str]:
    """The values of a text element, trailing padding removed ([] when empty)."""
    text = text.rstrip(" \x00") if vr != "UI" else text.strip(" \x00")
    if not text:
        return []
    return [text] if vr in SINGLE_VALUED_VRS else text.split("\\")


def element_text(element: RawDataElement | DataElement | None) -> str:
    """A short text value (a UID, a creator) without converting a raw element; "" if none."""
    if element is None:
        return ""
    if type(element) is RawDataElement:
        return (element.value or b"").decode("latin-1").strip(" \x00")
    value = element.value
    return "" if value is None else str(value).strip(" \x00")


def raw_element(tag: int, vr: str, value: bytes, implicit: bool,
                little: bool) -> RawDataElement:
    """A new element as pydicom would have read it: encoded, converted only on access."""
    return RawDataElement(BaseTag(tag), vr, len(value), value, 0, implicit, little)


def number_bytes(vr: str, number: int, little: bool) -> bytes:
    """One binary number of ``vr`` (AT as a tag: group, element)."""
    fmt = NUMBER_FORMATS[vr]
    end = "<" if little else ">"
    if vr == "AT":
        return struct.pack(end + fmt, number >> 16, number & 0xFFFF)
    return struct.pack(end + fmt, number)


def text_value_bytes(element: DataElement, codec: str | None) -> bytes | None:
    """The encoded value of a converted text element; None where pydicom must encode it."""
    vr = element.VR
    if codec is None or vr not in TEXT_VRS:
        return None
    value = element.value
    if value is None or value == "":
        parts: list[str] = []
    elif isinstance(value, str):
        parts = [value]
    elif isinstance(value, MultiValue | list | tuple):
        parts = [str(v) for v in value]
    elif vr in ("PN", "DS", "IS", "DA", "DT", "TM", "UI"):
        parts = [str(value)]
    else:
        return None
    if any(not isinstance(p, str) for p in parts):
        return None
    text = "\\".join(parts)
    try:
        return encode_text(text, vr, codec)
    except UnicodeEncodeError:
        return None


class DatasetEncoder:
    """Encodes data sets in one transfer syntax; the structs are built once per syntax."""

    def __init__(self, implicit: bool, little: bool):
        self.implicit = implicit
        self.little = little
        end = "<" if little else ">"
        self._short = struct.Struct(end + "HH2sH").pack
        self._long = struct.Struct(end + "HH2sHL").pack
        self._implicit = struct.Struct(end + "HHL").pack
        self._sequence_end = self._implicit(_SEQUENCE_END >> 16, _SEQUENCE_END & 0xFFFF, 0)

    def header(self, tag: int, vr: str | None, length: int) -> bytes:
        """Tag, VR (explicit only) and length of one element."""
        if self.implicit:
            return self._implicit(tag >> 16, tag & 0xFFFF, length)
        if vr is None or " or " in vr:
            vr = public_vr(tag) if not tag >> 16 & 1 else "UN"
        if vr in LONG_VRS:
            return self._long(tag >> 16, tag & 0xFFFF, vr.encode(), 0, length)
        if length > 0xFFFF:
            # A value its VR's 2-byte length cannot describe is written as UN (PS3.5 6.2.2).
            return self._long(tag >> 16, tag & 0xFFFF, b"UN", 0, length)
        return self._short(tag >> 16, tag & 0xFFFF, vr.encode(), length)

    def dataset(self, ds: Dataset, codec: str | None, *, skip_meta: bool = True) -> bytes:
        """All elements of ``ds`` in tag order, except group lengths and (optionally) group 2.

        Group lengths are dropped because a changed value makes them wrong; PS3.5 7.2
        retired them outside the file meta. This loop runs for every element of every
        file, so the common case — a raw element of a known VR — is written inline.
        """
        parts: list[bytes] = []
        append = parts.append
        if codec is not None:
            codec = text_codec(ds, codec)
        elements = [(int(tag), element) for tag, element in ds._dict.items()]
        elements.sort(key=_first)
        implicit = self.implicit
        implicit_header, short_header, long_header = self._implicit, self._short, self._long
        for number, element in elements:
            group = number >> 16
            if not number & 0xFFFF or group == 0xFFFE or (skip_meta and group == 0x0002):
                continue
            if type(element) is RawDataElement:
                value = element.value or b""
                length = len(value)
                if element.length == UNDEFINED_LENGTH:
                    append(self.header(number, element.VR, UNDEFINED_LENGTH))
                    append(value)
                    append(self._sequence_end)
                    continue
                if implicit:
                    append(implicit_header(group, number & 0xFFFF, length))
                else:
                    kind = _HEADER_KINDS.get(element.VR)  # type: ignore[arg-type]
                    if kind is None or (length > 0xFFFF and not kind[1]):
                        append(self.header(number, element.VR, length))
                    elif kind[1]:
                        append(long_header(group, number & 0xFFFF, kind[0], 0, length))
                    else:
                        append(short_header(group, number & 0xFFFF, kind[0], length))
                append(value)
            elif element.VR == "SQ":
                append(self.sequence(number, element.value or (), codec))
            else:
                append(self.converted(element, ds, codec))
        return b"".join(parts)

    def raw(self, number: int, element: RawDataElement) -> bytes:
        """One raw element as :meth:`dataset` writes it (header and value)."""
        value = element.value or b""
        if element.length == UNDEFINED_LENGTH:
            return self.header(number, element.VR, UNDEFINED_LENGTH) + value + self._sequence_end
        return self.header(number, element.VR, len(value)) + value

    def sequence(self, tag: int, items: Iterable[Dataset], codec: str | None) -> bytes:
        """A whole sequence element: header and :meth:`sequence_value`."""
        value = self.sequence_value(items, codec)
        return self.header(tag, "SQ", len(value)) + value

    def sequence_value(self, items: Iterable[Dataset], codec: str | None) -> bytes:
        """Items of defined length (each is encoded first, so its length is known)."""
        item_header = self._implicit
        encoded = []
        for item in items:
            body = self.dataset(item, codec)
            encoded.append(item_header(_ITEM >> 16, _ITEM & 0xFFFF, len(body)))
            encoded.append(body)
        return b"".join(encoded)

    def converted(self, element: DataElement, ds: Dataset, codec: str | None) -> bytes:
        """A converted, non-sequence element: fast for text, pydicom's writer otherwise."""
        value = text_value_bytes(element, codec)
        if value is not None:
            return self.header(int(element.tag), element.VR, len(value)) + value
        fp = DicomBytesIO()
        fp.is_implicit_VR, fp.is_little_endian = self.implicit, self.little
        if " or " in element.VR:
            element = correct_ambiguous_vr_element(element, ds, self.little)
        write_data_element(fp, element)
        return fp.getvalue()


@cache
def encoder(implicit: bool, little: bool) -> DatasetEncoder:
    """The (shared) encoder of one transfer syntax."""
    return DatasetEncoder(implicit, little)


__all__ = [
    "BINARY_VRS",
    "LONG_VRS",
    "MAX_LENGTH",
    "NUMBER_FORMATS",
    "TEXT_VRS",
    "DatasetEncoder",
    "decode_text",
    "effective_vr",
    "element_text",
    "encode_text",
    "encoder",
    "number_bytes",
    "public_vr",
    "raw_element",
    "split_values",
    "text_codec",
    "text_value_bytes",
    "vr_acted_on",
]
