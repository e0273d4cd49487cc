"""The DICOM file format around a received data set, written without pydicom.

pynetdicom's ``event.encoded_dataset()`` builds the file meta information through pydicom
datasets, which cost more per instance than writing the file. The group is small and
fixed, so it is encoded here directly (PS3.10 7.1: explicit VR little endian).
"""

from __future__ import annotations

import struct

from .. import __version__

#: rpacs's implementation class UID (under the pydicom-registered example root of the tests
#: would be wrong for a product; this is a UUID-derived 2.25 UID, fixed for rpacs).
IMPLEMENTATION_CLASS_UID = "2.25.305828441175915733312186420549734613881"
IMPLEMENTATION_VERSION = f"RPACS_{__version__}"[:16]


def _element(group_element: int, vr: bytes, value: bytes) -> bytes:
    tag = struct.pack("<HH", group_element >> 16, group_element & 0xFFFF)
    if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT"):
        return tag + vr + b"\x00\x00" + struct.pack("<L", len(value)) + value
    return tag + vr + struct.pack("<H", len(value)) + value


def _uid(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def _text(value: str) -> bytes:
    raw = value.encode("ascii", "replace")
    return raw + b" " if len(raw) % 2 else raw


def file_meta(sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str,
              source_ae: str) -> bytes:
    """Preamble, ``DICM`` prefix and file meta group for a data set received over DICOM."""
    body = b"".join((
        _element(0x00020001, b"OB", b"\x00\x01"),
        _element(0x00020002, b"UI", _uid(sop_class_uid)),
        _element(0x00020003, b"UI", _uid(sop_instance_uid)),
        _element(0x00020010, b"UI", _uid(transfer_syntax)),
        _element(0x00020012, b"UI", _uid(IMPLEMENTATION_CLASS_UID)),
        _element(0x00020013, b"SH", _text(IMPLEMENTATION_VERSION)),
        _element(0x00020016, b"AE", _text(source_ae)),
    ))
    length = _element(0x00020000, b"UL", struct.pack("<L", len(body)))
    return b"\x00" * 128 + b"DICM" + length + body
