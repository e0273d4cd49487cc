"""C-STORE requests received from their P-DATA fragments, without pynetdicom's messages.

For every request pynetdicom decodes the command set into a pydicom data set, copies it
into a primitive (validating each value), wraps it in an event and encodes the response
through pydicom again: more CPU per instance than reading, hashing and writing the
instance. A :class:`StoreReceiver` takes the P-DATA of an association first. It holds the
fragments of each message; once the message is complete it serves a plain C-STORE
request itself — command set read with :mod:`struct`, data set joined once, filed by the
gateway's ``store`` function, response encoded directly — and hands anything else
(other messages, a C-STORE it is not sure about) to pynetdicom unchanged, in order, as
if it had arrived just then.
"""

from __future__ import annotations

import functools
import re
import struct
from collections.abc import Callable
from typing import Any

from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class

from ..deid import quiet  # noqa: F401  (pydicom's value warnings off)

#: Files one received instance; its status: (association, SOP class UID, SOP instance UID,
#: transfer syntax UID, the data set's bytes) -> DIMSE status.
StoreFunction = Callable[[Association, str, str, str, bytes], int]

_ELEMENT_HEADER = struct.Struct("<HHL").unpack_from
_US = struct.Struct("<H").unpack
_COMMAND_FIELD, _MESSAGE_ID, _PRIORITY, _DATA_SET_TYPE = 0x0100, 0x0110, 0x0700, 0x0800
_SOP_CLASS, _SOP_INSTANCE = 0x0002, 0x1000
_C_STORE_RQ, _C_STORE_RSP, _NO_DATA_SET = 0x0001, 0x8001, 0x0101
#: A UID pynetdicom accepts without a word: digits and dots, at most 64 characters.
_PLAIN_UID = re.compile(r"[0-9][0-9.]{0,63}")


def read_command(encoded: bytes | bytearray) -> dict[int, bytes] | None:
    """The elements of a command set (group 0000, implicit VR little endian) by element
    number; None when it is not one."""
    elements: dict[int, bytes] = {}
    position, size = 0, len(encoded)
    while position < size:
        if position + 8 > size:
            return None
        group, number, length = _ELEMENT_HEADER(encoded, position)
        start = position + 8
        position = start + length
        if group != 0x0000 or position > size:
            return None
        elements[number] = bytes(encoded[start:position])
    return elements


def _element(number: int, value: bytes) -> bytes:
    return struct.pack("<HHL", 0, number, len(value)) + value


def _uid(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def store_response(sop_class: str, sop_instance: str, message_id: int, status: int) -> bytes:
    """The command set of a C-STORE response, as pynetdicom encodes it (a test holds the
    two equal) without a pydicom data set for six fixed fields."""
    body = b"".join((
        _element(_SOP_CLASS, _uid(sop_class)),
        _element(_COMMAND_FIELD, struct.pack("<H", _C_STORE_RSP)),
        _element(0x0120, struct.pack("<H", message_id)),  # Message ID Being Responded To
        _element(_DATA_SET_TYPE, struct.pack("<H", _NO_DATA_SET)),
        _element(0x0900, struct.pack("<H", status)),
        _element(_SOP_INSTANCE, _uid(sop_instance)),
    ))
    return _element(0x0000, struct.pack("<L", len(body))) + body


def store_response_command(rsp: C_STORE) -> bytes | None:
    """:func:`store_response` of a pynetdicom C-STORE response primitive; None for one
    that carries more than its status (an error comment, an offending element)."""
    if rsp.ErrorComment is not None or rsp.OffendingElement is not None:
        return None
    if rsp.MessageIDBeingRespondedTo is None or rsp.Status is None:
        return None
    return store_response(str(rsp.AffectedSOPClassUID), str(rsp.AffectedSOPInstanceUID),
                          int(rsp.MessageIDBeingRespondedTo), int(rsp.Status))


def send_command(assoc: Association, context_id: int, command: bytes) -> bool:
    """Send a command without a data set as one P-DATA; False if the peer's maximum PDU
    is too small for it (pynetdicom then fragments it)."""
    limit = assoc.dimse.maximum_pdu_size
    if limit and len(command) + 6 > limit:
        return False
    pdata = P_DATA()
    # Message control header 0x03: a command, its last (and only) fragment.
    pdata.presentation_data_value_list.append((context_id, b"\x03" + command))
    assoc.dul.send_pdu(pdata)
    return True


@functools.lru_cache(maxsize=512)
def _is_storage(sop_class: str) -> bool:
    return issubclass(uid_to_service_class(sop_class), StorageServiceClass)


def _text(value: bytes | None) -> str:
    return (value or b"").decode("ascii", "replace").rstrip("\x00 ").strip()


def _number(value: bytes | None) -> int | None:
    return _US(value)[0] if value is not None and len(value) == 2 else None


class StoreReceiver:
    """The P-DATA receiver of one association (it replaces pynetdicom's
    ``DIMSEServiceProvider.receive_primitive``, which it keeps for everything else)."""

    def __init__(self, assoc: Association, store: StoreFunction) -> None:
        self._assoc = assoc
        self._store = store
        self._pass_on: Callable[[P_DATA], None] = assoc.dimse.receive_primitive
        self._reset()

    def _reset(self) -> None:
        self._held: list[P_DATA] = []
        self._command = bytearray()
        self._data: list[bytes] = []
        self._fields: dict[int, bytes] | None = None

    def receive_primitive(self, primitive: P_DATA) -> None:
        """One P-DATA from the peer: held until its message is complete (PS3.8 E.2)."""
        self._held.append(primitive)
        fragments = primitive.presentation_data_value_list
        for index, (context_id, fragment) in enumerate(fragments):
            control = fragment[0]
            if control & 1:  # command
                self._command += memoryview(fragment)[1:]
                if not control & 2:
                    continue
                self._fields = read_command(self._command)
                if self._fields is not None and _number(
                        self._fields.get(_DATA_SET_TYPE)) != _NO_DATA_SET:
                    continue  # a data set follows
            else:
                self._data.append(fragment)
                if not control & 2:
                    continue
            # The message is complete. pynetdicom ignores fragments after the end of a
            # message in the same P-DATA: only a message ending with its P-DATA is ours.
            held, fields, data = self._held, self._fields, self._data
            self._reset()
            if index != len(fragments) - 1 or not self._serve(fields, data, context_id):
                for item in held:
                    self._pass_on(item)
            return

    def _serve(self, fields: dict[int, bytes] | None, data: list[bytes],
               context_id: int) -> bool:
        """Serve a complete message if it is a plain C-STORE request; whether it was."""
        if fields is None or _number(fields.get(_COMMAND_FIELD)) != _C_STORE_RQ or not data:
            return False
        message_id = _number(fields.get(_MESSAGE_ID))
        sop_class = _text(fields.get(_SOP_CLASS))
        sop_instance = _text(fields.get(_SOP_INSTANCE))
        if message_id is None or _number(fields.get(_PRIORITY)) is None:
            return False
        if not (_PLAIN_UID.fullmatch(sop_class) and _PLAIN_UID.fullmatch(sop_instance)):
            return False
        assoc: Any = self._assoc
        context = assoc._accepted_cx.get(context_id)
        if context is None or assoc._sent_release or not assoc.is_established:
            return False  # pynetdicom refuses or aborts: let it
        if not _is_storage(sop_class):
            return False
        data_set = b"".join(memoryview(fragment)[1:] for fragment in data)
        status = self._store(assoc, sop_class, sop_instance, str(context.transfer_syntax[0]),
                             data_set)
        command = store_response(sop_class, sop_instance, message_id, status)
        if not send_command(assoc, context_id, command):
            rsp = C_STORE()
            rsp.MessageIDBeingRespondedTo = message_id
            rsp.AffectedSOPClassUID = sop_class
            rsp.AffectedSOPInstanceUID = sop_instance
            rsp.Status = status
            assoc.dimse.send_msg(rsp, context_id)
        return True
