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
from pydicom.dataelem import RawDataElement
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from ..errors import DicomInputError

_REQUIRED = (
    ("SOPClassUID", "missing SOPClassUID"),
    ("SOPInstanceUID", "missing SOPInstanceUID"),
    ("StudyInstanceUID", "missing StudyInstanceUID"),
    ("SeriesInstanceUID", "missing SeriesInstanceUID"),
)
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT"})
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
    has_preamble = len(data) >= 132 and data[128:132] == b"DICM"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = dcmread(BytesIO(data), force=not has_preamble)
    except InvalidDicomError as exc:
        raise DicomInputError(source, "not a DICOM file") from exc
    except (EOFError, OSError, ValueError, KeyError, IndexError, struct.error, zlib.error,
            NotImplementedError) as exc:
        raise DicomInputError(source, f"unreadable DICOM structure ({type(exc).__name__})") \
            from exc
    if any("End of file reached" in str(w.message) for w in caught):
        raise DicomInputError(source, "truncated file (a sequence or pixel data has no end)")
    if ds.original_encoding[0] is None:
        raise DicomInputError(source, "not a DICOM file")
    _check_complete(ds, source)
    for keyword, reason in _REQUIRED:
        try:
            value = ds.get(keyword)
        except Exception as exc:
            raise DicomInputError(source, f"unreadable {keyword}") from exc
        if not value or not str(value).strip(" \x00"):
            raise DicomInputError(source, reason)
    if getattr(ds, "file_meta", None) is None or "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta = ds.file_meta if getattr(ds, "file_meta", None) else FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = _syntax_of(ds)
    return ds


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
    for tag in ds._dict:
        raw = ds.get_item(tag)
        if (isinstance(raw, RawDataElement) and raw.length != _UNDEFINED
                and raw.value is not None and len(raw.value) != raw.length):
            raise DicomInputError(source, "truncated file (a value ends past end of file)")
    if not ds._dict:
        raise DicomInputError(source, "no data elements")


def _syntax_of(ds: Dataset) -> UID:
    implicit, little = ds.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def write_instance(ds: Dataset) -> bytes:
    """Preamble, file meta and data set, in the encoding the data set was read in."""
    implicit, little = ds.original_encoding
    if implicit is None:
        implicit, little = False, True
    meta = ds.file_meta
    syntax = UID(str(meta.get("TransferSyntaxUID", "")))
    if not syntax or (not syntax.is_compressed and (
            syntax.is_implicit_VR != implicit or syntax.is_little_endian != little)):
        # The header claimed another encoding than the data really has (pydicom reads the
        # truth): the file meta is made to tell the truth.
        meta.TransferSyntaxUID = _syntax_of(ds)
    out = DicomBytesIO()
    out.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    body = _body(ds, implicit, little)
    if meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian:
        # PS3.5 A.5: the data set after the file meta is one raw deflate stream.
        deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        body = deflater.compress(body) + deflater.flush()
    out.write(body)
    return out.getvalue()


#: VRs whose value is text that rpacs may have changed (dates, UIDs, descriptions, names).
_TEXT_VRS = frozenset({"AE", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI",
                       "UR", "UT"})
_SIMPLE_CODECS = {"iso8859": "latin-1", "latin_1": "latin-1", "iso-8859-1": "latin-1",
                  "utf_8": "utf-8", "UTF8": "utf-8", "utf-8": "utf-8", "utf8": "utf-8"}


def _single_byte_or_utf8_codec(ds: Dataset) -> str | None:
    """The codec for text when the data set uses one simple character set, else None."""
    charset = ds.get_item(0x00080005)
    if charset is None:
        return "latin-1"
    names = ds._character_set
    if len(names) != 1:
        return None
    return _SIMPLE_CODECS.get(names[0])


def _encoded_text(element: object, codec: str | None) -> bytes | None:
    """Encode a changed text element as pydicom would, without its per-element overhead.

    Returns None where pydicom's writer is needed (numbers, sequences, other character
    sets, values too long for a short header).
    """
    vr = getattr(element, "VR", None)
    if codec is None or vr not in _TEXT_VRS:
        return None
    value = element.value  # type: ignore[attr-defined]
    if value is None:
        parts: list[str] = []
    elif isinstance(value, str):
        parts = [value]
    elif isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        parts = [str(v) for v in value]
    elif vr == "PN":
        parts = [str(value)]
    else:
        return None
    try:
        data = "\\".join(parts).encode("ascii" if vr == "UI" else codec)
    except UnicodeEncodeError:
        return None
    if len(data) % 2:
        data += b"\x00" if vr == "UI" else b" "
    if len(data) > 0xFFFE and vr not in ("UC", "UR", "UT"):
        return None
    return data


def _body(ds: Dataset, implicit: bool, little: bool, codec: str | None = "") -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = little
    fp.is_implicit_VR = implicit
    end = "<" if little else ">"
    short_header = struct.Struct(end + "HH2sH")
    long_header = struct.Struct(end + "HH2sHL")
    implicit_header = struct.Struct(end + "HHL")
    delimiter = struct.pack(end + "HHL", 0xFFFE, 0xE0DD, 0)
    write = fp.write
    elements = ds._dict
    if codec == "":
        codec = _single_byte_or_utf8_codec(ds)
    item_start = struct.pack(end + "HH", 0xFFFE, 0xE000)
    item_end = struct.pack(end + "HHL", 0xFFFE, 0xE00D, 0)
    for tag in sorted(elements):
        if tag >> 16 == 0x0002 or tag & 0xFFFF == 0 or tag >> 16 == 0xFFFE:
            continue  # group lengths would be wrong after changes; PS3.5 retired them
        element = elements[tag]
        if not isinstance(element, RawDataElement) and element.VR == "SQ":
            # Items are written by this same function, so their unchanged elements are
            # copied as bytes too; undefined lengths need no second pass to measure.
            undefined = b"\xff\xff\xff\xff"
            if implicit:
                write(implicit_header.pack(tag >> 16, tag & 0xFFFF, _UNDEFINED))
            else:
                write(long_header.pack(tag >> 16, tag & 0xFFFF, b"SQ", 0, _UNDEFINED))
            for item in element.value or ():
                write(item_start + undefined)
                write(_body(item, implicit, little, codec))
                write(item_end)
            write(delimiter)
            continue
        if not isinstance(element, RawDataElement):
            encoded = _encoded_text(element, codec)
            if encoded is None:
                write_data_element(fp, element)
                continue
            element = RawDataElement(element.tag, element.VR, len(encoded), encoded, 0,
                                     implicit, little)
        value = element.value or b""
        undefined = element.length == _UNDEFINED
        length = _UNDEFINED if undefined else len(value)
        group, number = tag >> 16, tag & 0xFFFF
        if implicit:
            write(implicit_header.pack(group, number, length))
        else:
            vr = element.VR or "UN"
            if vr in _LONG_VRS:
                write(long_header.pack(group, number, vr.encode(), 0, length))
            elif undefined or len(value) > 0xFFFF:
                # A value its VR's 2-byte length cannot describe: pydicom knows the remedies.
                write_data_element(fp, ds[tag])
                continue
            else:
                write(short_header.pack(group, number, vr.encode(), length))
        write(value)
        if undefined:
            write(delimiter)
    return fp.getvalue()
