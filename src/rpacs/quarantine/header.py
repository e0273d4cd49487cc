"""The quarantine's few header values of a received instance, read from its bytes.

The gateway reads them for every C-STORE before it answers, so the reader is on the
sender's clock. :func:`scan_header` walks the elements of a plain little-endian Part 10
file with :mod:`struct` up to the SeriesInstanceUID — the wanted values all come before
it — and skips everything else by its length, sequences of undefined length included.
It answers only where the answer is certainly pydicom's: anything unusual (big endian,
deflate, elements out of order, a value that is not plain ASCII or has several values, a
damaged structure) returns None and the caller reads the file with pydicom, the
reference, which a differential test holds the two to.
"""

from __future__ import annotations

import struct

_EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"
_IMPLICIT_LITTLE = "1.2.840.10008.1.2"
#: Explicit VR little endian data sets: the syntaxes that only compress the pixel data.
_ENCAPSULATED_ROOTS = ("1.2.840.10008.1.2.4.", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.8.")
_DEFLATED = frozenset({"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.95"})
_TAG_LENGTH = struct.Struct("<HHL").unpack_from
_EXPLICIT_HEADER = struct.Struct("<HH2sH").unpack_from
_SHORT_LENGTH = struct.Struct("<H").unpack_from
_LENGTH = struct.Struct("<L").unpack_from
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR",
                       b"UT"})
_VRS = _LONG_VRS | {vr.encode() for vr in (
    "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN", "SH", "SL",
    "SS", "ST", "SV", "TM", "UI", "UL", "US", "UV")}
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_TRANSFER_SYNTAX = 0x00020010
#: The wanted elements by tag; the last of them ends the walk.
WANTED = {
    0x00080005: "SpecificCharacterSet",
    0x00080018: "SOPInstanceUID",
    0x00080020: "StudyDate",
    0x00080050: "AccessionNumber",
    0x00080060: "Modality",
    0x00081030: "StudyDescription",
    0x00100020: "PatientID",
    0x0020000D: "StudyInstanceUID",
    0x0020000E: "SeriesInstanceUID",
}
_LAST = max(WANTED)
#: Bytes that make a value pydicom's to decode: non-ASCII, ISO 2022 escapes, several values.
_NOT_PLAIN = frozenset(range(0x80, 0x100)) | {0x1B, ord("\\")}


class _Unclear(Exception):
    """The file is not one this reader answers for (pydicom reads it)."""


def _element(data: bytes, position: int, implicit: bool) -> tuple[int, int, int, int]:
    """(tag, value start, value end, next position) of the element at ``position``."""
    if position + 8 > len(data):
        raise _Unclear
    group, number, length = _TAG_LENGTH(data, position)
    tag = group << 16 | number
    code = b""
    start = position + 8
    if not implicit and group != 0xFFFE:  # items and delimiters have no VR
        code = data[position + 4:position + 6]
        if code in _LONG_VRS:
            if position + 12 > len(data):
                raise _Unclear
            length = _LENGTH(data, position + 8)[0]
            start = position + 12
        elif code in _VRS:
            length = _SHORT_LENGTH(data, position + 6)[0]
        else:
            raise _Unclear
    if length == _UNDEFINED:
        if tag in (_SEQUENCE_END, _ITEM_END):
            raise _Unclear
        # A sequence, an item or (explicit) UN of undefined length: up to its delimiter.
        # An undefined-length UN holds implicit VR little endian (PS3.5 6.2.2).
        delimiter = _ITEM_END if tag == _ITEM else _SEQUENCE_END
        inner = implicit or code == b"UN"
        cursor = start
        while True:
            found, _, _, after = _element(data, cursor, inner)
            if found == delimiter:
                return tag, start, cursor, after
            cursor = after
    end = start + length
    if end > len(data):
        raise _Unclear
    return tag, start, end, end


def _text(raw: bytes) -> str:
    if not _NOT_PLAIN.isdisjoint(raw):
        raise _Unclear
    # pydicom drops trailing NULs and spaces of text values; the quarantine strips too.
    return raw.decode("ascii").rstrip("\x00 ").strip()


def scan_header(data: bytes) -> dict[str, str] | None:
    """The wanted values (by keyword, '' when absent) of a Part 10 file, as pydicom reads
    them; None when pydicom must read this file."""
    try:
        return _scan(data)
    except (_Unclear, RecursionError, struct.error, UnicodeDecodeError):
        return None


def _scan(data: bytes) -> dict[str, str] | None:
    if len(data) < 144 or data[128:132] != b"DICM":
        return None
    position, syntax = 132, None
    while position + 8 <= len(data) and data[position:position + 2] == b"\x02\x00":
        tag, start, end, position = _element(data, position, False)
        if tag == _TRANSFER_SYNTAX:
            syntax = data[start:end].decode("ascii").rstrip("\x00 ")
    if syntax == _IMPLICIT_LITTLE:
        implicit = True
        # pydicom reads an "implicit" data set that is explicit as explicit: leave it that.
        if data[position + 4:position + 6] in _VRS:
            return None
    elif syntax == _EXPLICIT_LITTLE or (
            syntax is not None and syntax.startswith(_ENCAPSULATED_ROOTS)
            and syntax not in _DEFLATED):
        implicit = False
    else:
        return None
    found: dict[int, bytes] = {}
    previous, size = 0x0002FFFF, len(data)
    # The loop of every received instance: the common element (defined length) inline.
    while position < size:
        if position + 8 > size:
            return None
        start = position + 8
        if implicit:
            group, number, length = _TAG_LENGTH(data, position)
        else:
            group, number, code, length = _EXPLICIT_HEADER(data, position)
            if code in _LONG_VRS:
                length = _LENGTH(data, start)[0]
                start += 4
            elif code not in _VRS:
                return None
        tag = group << 16 | number
        if tag <= previous or group == 0xFFFE:
            return None  # out of order: pydicom would still find what comes later
        if tag > _LAST:
            break
        if length == _UNDEFINED:
            position = _element(data, position, implicit)[3]
        else:
            position = start + length
            if position > size:
                return None
            if tag in WANTED:
                found[tag] = data[start:position]
        previous = tag
    return {keyword: _text(found.get(tag, b"")) for tag, keyword in WANTED.items()}
