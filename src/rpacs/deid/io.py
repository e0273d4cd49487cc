"""Reading input instances strictly and writing de-identified ones fast and exactly.

:func:`write_instance` copies every element that was not changed as the bytes it was read
as (pydicom keeps such elements raw), in the transfer syntax the data came in: compressed
pixel data is never decoded or re-encoded, big-endian data stays big-endian, and writing the
same dataset twice gives the same bytes.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from io import BytesIO

from pydicom import Dataset, dcmread
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import RawDataElement, empty_value_for_VR
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from ..errors import DeidentificationError, DicomInputError
from . import quiet  # noqa: F401  (pydicom's value warnings off)
from .encoding import element_text, encode_text, encoder, number_bytes, raw_element
from .sop import Deidentifier

#: (tag, reason): the UIDs without which an instance cannot be filed or de-identified.
_REQUIRED = (
    (0x00080016, "missing SOPClassUID"),
    (0x00080018, "missing SOPInstanceUID"),
    (0x0020000D, "missing StudyInstanceUID"),
    (0x0020000E, "missing SeriesInstanceUID"),
)
_UNDEFINED = 0xFFFFFFFF


def read_instance(data: bytes, source: str) -> Dataset:
    """Parse one instance; :class:`DicomInputError` names ``source`` and the reason.

    A file without the Part 10 preamble is accepted only when it plainly starts like a data
    set (group 0008, or a file meta group), as DCMTK does. Truncated values, an unparseable
    structure and missing identifying UIDs are refused: such a file cannot be stored safely.
    """
    if not data:
        raise DicomInputError(source, "empty file (0 bytes)")
    if not looks_like_dicom(data):
        raise DicomInputError(source, "not a DICOM file")
    ds = _read_plain(data)
    if ds is not None:
        _check_required(ds, source)
        return ds
    has_preamble = len(data) >= 132 and data[128:132] == b"DICM"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = dcmread(BytesIO(data), force=not has_preamble)
    except InvalidDicomError as exc:
        raise DicomInputError(source, "not a DICOM file") from exc
    except Exception as exc:  # pydicom raises many kinds on damaged input; all mean this
        raise DicomInputError(source, f"unreadable DICOM structure ({type(exc).__name__})") \
            from exc
    if any("End of file reached" in str(w.message) for w in caught):
        raise DicomInputError(source, "truncated file (a sequence or pixel data has no end)")
    if _ends_in_a_cut_header(ds, data):
        raise DicomInputError(source, "truncated file (an element header is cut off)")
    if ds.original_encoding[0] is None:
        raise DicomInputError(source, "not a DICOM file")
    _check_complete(ds, source)
    _check_required(ds, source)
    if getattr(ds, "file_meta", None) is None or "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta = ds.file_meta if getattr(ds, "file_meta", None) else FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = _syntax_of(ds)
    return ds


def _check_required(ds: Dataset, source: str) -> None:
    for tag, reason in _REQUIRED:
        if not element_text(ds._dict.get(BaseTag(tag))):
            raise DicomInputError(source, reason)


#: Every VR of PS3.5 Table 6.2-1 as it appears in an explicit VR header.
_VRS = {vr.encode(): vr for vr in (
    "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF",
    "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN",
    "UR", "US", "UT", "UV")}
_LONG_HEADER_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR",
                    b"UT"}
_EXPLICIT_HEADER = struct.Struct("<HH2sH").unpack_from
_IMPLICIT_HEADER = struct.Struct("<HHL").unpack_from
_LENGTH = struct.Struct("<L").unpack_from
_new_raw = tuple.__new__


def _read_plain(data: bytes) -> FileDataset | None:
    """The common case read in one pass, exactly as ``dcmread`` would read it; else None.

    A Part 10 file in explicit or implicit VR little endian whose elements all have defined
    lengths is cut into pydicom raw elements directly — the same elements, values, offsets
    and encodings ``dcmread`` produces (a test holds the two to that), at a fraction of the
    cost of pydicom's general-purpose element generator. Anything else (no preamble, big
    endian, deflate, encapsulated pixel data, undefined lengths, a command group, a VR that
    is not one, a value running past the end) returns None, and ``dcmread`` reads the file.
    """
    size = len(data)
    if size < 144 or data[128:132] != b"DICM":
        return None
    meta, position = _explicit_elements(data, 132, meta=True)
    if meta is None:
        return None
    syntax = element_text(meta.get(BaseTag(0x00020010)))
    if syntax == ExplicitVRLittleEndian:
        implicit = False
        elements, _ = _explicit_elements(data, position)
    elif syntax == ImplicitVRLittleEndian:
        implicit = True
        # pydicom switches to explicit VR when an "implicit" file is not: so does dcmread.
        if position + 6 <= size and data[position + 4:position + 6] in _VRS:
            return None
        elements = _implicit_elements(data, position)
    else:
        return None
    if elements is None:
        return None
    encoding = _encodings(elements.get(BaseTag(0x00080005)))
    body = Dataset(elements)
    body.set_original_encoding(implicit, True, encoding)
    ds = FileDataset(BytesIO(data), body, data[:128], FileMetaDataset(meta), implicit, True)
    ds.set_original_encoding(implicit, True, encoding)
    return ds


def _encodings(charset: RawDataElement | None) -> str | list[str]:
    """Python encodings of a raw Specific Character Set, as pydicom derives them."""
    if charset is None:
        return default_encoding
    text = (charset.value or b"").decode("latin-1").rstrip(" \x00")
    terms = [term.strip() for term in text.split("\\")]
    return convert_encodings(terms if len(terms) > 1 else terms[0])


def _explicit_elements(data: bytes, position: int, *, meta: bool = False
                       ) -> tuple[dict[BaseTag, RawDataElement] | None, int]:
    """Raw elements in explicit VR little endian from ``position`` to the end (the file
    meta: to the end of group 2); None where the fast reader must leave the file to pydicom.

    This loop runs once per element of every file: names are bound locally.
    """
    size = len(data)
    elements: dict[BaseTag, RawDataElement] = {}
    header, length_at, vrs, long_vrs = _EXPLICIT_HEADER, _LENGTH, _VRS, _LONG_HEADER_VRS
    new, raw, tag_of = _new_raw, RawDataElement, BaseTag
    while position < size:
        if position + 8 > size:
            return None, position
        group, number, code, length = header(data, position)
        if meta and group != 0x0002:
            break
        vr = vrs.get(code)
        if vr is None or (not meta and group <= 0x0002) or group == 0xFFFE:
            return None, position
        start = position + 8
        if code in long_vrs:
            if start + 4 > size:
                return None, position
            length = length_at(data, start)[0]
            start += 4
        position = start + length
        if position > size:  # also an undefined length (0xFFFFFFFF)
            return None, position
        tag = tag_of(group << 16 | number)
        value = data[start:position] if length else empty_value_for_VR(vr, raw=True)
        # RawDataElement's own __new__ is Python; the tuple is built directly, defaults too.
        elements[tag] = new(raw, (tag, vr, length, value, start, False, True, True, False))
    return elements, position


def _implicit_elements(data: bytes, position: int) -> dict[BaseTag, RawDataElement] | None:
    """Raw elements in implicit VR little endian to the end; None as for the explicit."""
    size = len(data)
    elements: dict[BaseTag, RawDataElement] = {}
    header, new, raw, tag_of = _IMPLICIT_HEADER, _new_raw, RawDataElement, BaseTag
    while position < size:
        if position + 8 > size:
            return None
        group, number, length = header(data, position)
        if group <= 0x0002 or group == 0xFFFE:
            return None
        start = position + 8
        position = start + length
        if position > size:  # also an undefined length (0xFFFFFFFF)
            return None
        tag = tag_of(group << 16 | number)
        value = data[start:position] if length else empty_value_for_VR(None, raw=True)
        elements[tag] = new(raw, (tag, None, length, value, start, True, True, True, False))
    return elements


def deidentify_instance(data: bytes, source: str,
                        deidentifier: Deidentifier) -> tuple[bytes, Dataset]:
    """Read, de-identify and write one instance: the de-identified file and its dataset.

    Raises :class:`DicomInputError` for input that is not a usable instance and
    :class:`~rpacs.errors.DeidentificationError` when it cannot be made safe.
    """
    ds = read_instance(data, source)
    deidentifier.deidentify(ds)
    try:
        return write_instance(ds), ds
    except Exception as exc:
        raise DeidentificationError(
            f"could not write the de-identified instance ({type(exc).__name__})") from exc


def looks_like_dicom(data: bytes) -> bool:
    """Part 10 file (preamble + ``DICM``), or a bare data set starting with group 0002/0008."""
    if len(data) >= 132 and data[128:132] == b"DICM":
        return True
    if len(data) < 8:
        return False
    group_le = int.from_bytes(data[0:2], "little")
    group_be = int.from_bytes(data[0:2], "big")
    return group_le in (0x0002, 0x0008) or group_be == 0x0008


def _check_complete(ds: Dataset, source: str) -> None:
    """pydicom accepts a last value cut short by the end of the file: refuse it here."""
    for raw in ds._dict.values():
        if (type(raw) is RawDataElement and raw.length != _UNDEFINED
                and raw.value is not None and len(raw.value) != raw.length):
            raise DicomInputError(source, "truncated file (a value ends past end of file)")
    if not ds._dict:
        raise DicomInputError(source, "no data elements")


def _ends_in_a_cut_header(ds: Dataset, data: bytes) -> bool:
    """Whether 1-7 bytes follow the last element: pydicom drops a header cut short silently.

    Only for data sets pydicom read from ``data`` itself (not inflated from it), judged by
    the last element in the file when it has a defined length.
    """
    if element_text(ds.file_meta.get(BaseTag(0x00020010)) if getattr(
            ds, "file_meta", None) is not None else None) == DeflatedExplicitVRLittleEndian:
        return False
    ends = [raw.value_tell + raw.length for raw in ds._dict.values()
            if type(raw) is RawDataElement and raw.length != _UNDEFINED]
    last = max((getattr(e, "value_tell", 0) or 0 for e in ds._dict.values()), default=0)
    if not ends or max(ends) < last:  # the last element has an undefined length
        return False
    return 0 < len(data) - max(ends) < 8


def _syntax_of(ds: Dataset) -> UID:
    implicit, little = ds.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def write_instance(ds: Dataset) -> bytes:
    """Preamble, file meta and data set, in the encoding the data set was read in.

    Unchanged elements are copied as the bytes they were read as; the file meta group
    length is computed; the same dataset always gives the same bytes.
    """
    implicit, little = ds.original_encoding
    if implicit is None or little is None:
        implicit, little = False, True
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = ds.file_meta = FileMetaDataset()
    syntax = UID(_meta_text(meta, 0x00020010))
    if not syntax or (syntax.is_transfer_syntax and not syntax.is_compressed and (
            syntax.is_implicit_VR != implicit or syntax.is_little_endian != little)):
        # The header claimed another encoding than the data really has (pydicom reads the
        # truth): the file meta is made to tell the truth.
        syntax = _syntax_of(ds)
        meta._dict[BaseTag(0x00020010)] = raw_element(
            0x00020010, "UI", encode_text(syntax, "UI", "ascii"), False, True)
    for tag, source in ((0x00020002, 0x00080016), (0x00020003, 0x00080018)):
        if BaseTag(tag) not in meta._dict and BaseTag(source) in ds._dict:
            meta._dict[BaseTag(tag)] = raw_element(
                tag, "UI", encode_text(str(ds[source].value), "UI", "ascii"), False, True)
    body = encoder(implicit, little).dataset(ds, "latin-1")
    if syntax == DeflatedExplicitVRLittleEndian:
        # PS3.5 A.5: the data set after the file meta is one raw deflate stream.
        deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        body = deflater.compress(body) + deflater.flush()
    return b"".join((_PREAMBLE, _file_meta_bytes(meta), body))


_PREAMBLE = b"\x00" * 128 + b"DICM"
_META_VERSION = b"\x00\x01"


def _meta_text(meta: Dataset, tag: int) -> str:
    return element_text(meta._dict.get(BaseTag(tag)))


def _file_meta_bytes(meta: Dataset) -> bytes:
    """Group 2 in explicit VR little endian, with its group length and version (PS3.10 7.1)."""
    elements = meta._dict
    if BaseTag(0x00020001) not in elements:
        elements[BaseTag(0x00020001)] = raw_element(
            0x00020001, "OB", _META_VERSION, False, True)
    missing = [name for tag, name in ((0x00020002, "MediaStorageSOPClassUID"),
                                      (0x00020003, "MediaStorageSOPInstanceUID"),
                                      (0x00020010, "TransferSyntaxUID"))
               if not _meta_text(meta, tag)]
    if missing:
        raise ValueError(f"file meta lacks {', '.join(missing)}")
    group = encoder(False, True)
    parts = []
    for tag in sorted(elements, key=int):
        number = int(tag)
        if number >> 16 != 0x0002 or number == 0x00020000:
            continue
        element = elements[tag]
        if type(element) is RawDataElement:
            value = element.value or b""
            if len(value) % 2:  # odd, from a malformed file: padded as PS3.5 7.1.1 wants
                value += b"\x00" if element.VR in ("UI", "OB", "OW", "UN") else b" "
            parts.append(group.header(number, element.VR, len(value)))
            parts.append(value)
        else:
            parts.append(group.converted(element, meta, "latin-1"))
    body = b"".join(parts)
    return group.header(0x00020000, "UL", 4) + number_bytes("UL", len(body), True) + body
