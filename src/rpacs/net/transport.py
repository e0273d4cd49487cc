"""Prompt associations: pynetdicom's association threads woken by events, not by polling.

pynetdicom (2.x, 3.0) runs two threads per association that poll: the upper layer (DUL)
checks its socket and its outgoing queue and sleeps ``_run_loop_delay`` (1 ms) when both
were empty; the association's reactor looks for a received DIMSE message every 1 ms.
A C-STORE sender waits for each response before it sends the next instance, so these
sleeps add up to several times what writing the file costs, and a shorter sleep only
turns them into busy loops competing for the GIL and the CPU.

:func:`make_prompt` (bound to ``EVT_CONN_OPEN``, which pynetdicom fires after it built the
acceptor's association and before it starts its threads) keeps pynetdicom's reactors but
lets each of them *wait* for its work instead:

- the DUL blocks in ``select`` on the peer's socket and a doorbell that rings whenever
  the association queues a primitive to send;
- the reactor's non-blocking look for a message waits until one arrives (or the peer asks
  to release or abort), at most :data:`IDLE_WAIT`;
- PDUs are read with ``recv_into`` into one buffer instead of in 4 KB pieces.

Both waits end after :data:`IDLE_WAIT` at the latest, so timers, kills and anything else
the reactors check once per loop are seen as before, only without the spinning.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import select
import struct
import threading
from collections.abc import Callable
from typing import Any

from pynetdicom import evt
from pynetdicom._handlers import (
    standard_dimse_recv_handler,
    standard_dimse_sent_handler,
    standard_pdu_recv_handler,
    standard_pdu_sent_handler,
)
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class
from pynetdicom.transport import AssociationSocket

#: Longest a waiting reactor sleeps before it looks at its timers and flags again.
IDLE_WAIT = 0.02
#: pynetdicom attributes this module replaces; a test holds them to the pinned versions.
REPLACED = {
    "dul": ("socket", "to_provider_queue", "to_user_queue", "_run_loop_delay"),
    "dimse": ("msg_queue", "send_msg", "maximum_pdu_size"),
    "assoc": ("_accepted_cx", "_sent_release", "is_established", "unbind", "get_handlers"),
}
_STANDARD_LOGGING = (
    (evt.EVT_DIMSE_RECV, standard_dimse_recv_handler),
    (evt.EVT_DIMSE_SENT, standard_dimse_sent_handler),
    (evt.EVT_PDU_RECV, standard_pdu_recv_handler),
    (evt.EVT_PDU_SENT, standard_pdu_sent_handler),
)


class Doorbell:
    """A pipe that wakes a ``select``: :meth:`ring` from any thread, :meth:`clear` after.

    Closed with the socket; a ring after that is ignored (under the lock, so that it can
    never write into a descriptor number the system has handed out again).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._closed = False

    def fileno(self) -> int:
        return self._read

    def ring(self) -> None:
        with self._lock:
            if self._closed:
                return
            with contextlib.suppress(BlockingIOError):  # full: it has rung already
                os.write(self._write, b"\x00")

    def clear(self) -> None:
        with self._lock:
            if self._closed:
                return
            with contextlib.suppress(BlockingIOError):
                while os.read(self._read, 4096):
                    pass

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._read)
                os.close(self._write)

    def __del__(self) -> None:
        self.close()


class RingingQueue(queue.Queue[Any]):
    """A queue that rings a doorbell when something is put on it."""

    def __init__(self, doorbell: Doorbell) -> None:
        super().__init__()
        self._doorbell = doorbell

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._doorbell.ring()


class MessageQueue(queue.Queue[Any]):
    """The received DIMSE messages: a non-blocking ``get`` waits up to :data:`IDLE_WAIT`.

    pynetdicom's reactor asks without blocking and sleeps 1 ms between two asks; waiting
    here instead answers it the moment a message is complete. :meth:`nudge` ends the
    wait early without a message (the peer asked to release or aborted). A message that
    ``serve_now`` takes (it returns True) is served by it at once and not queued.
    """

    def __init__(self, serve_now: Callable[[Any, Any], bool] | None = None) -> None:
        super().__init__()
        self._nudged = False
        self._serve_now = serve_now

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if self._serve_now is not None and self._serve_now(*item):
            return
        super().put(item, block, timeout)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if not block:
            with self.not_empty:
                if not self._qsize() and not self._nudged:
                    self.not_empty.wait(IDLE_WAIT)
                self._nudged = False
        return super().get(block, timeout)

    def nudge(self) -> None:
        with self.not_empty:
            self._nudged = True
            self.not_empty.notify_all()


class NudgingQueue(queue.Queue[Any]):
    """The upper layer's primitives for the association (release, abort): each one ends
    the reactor's wait for a message, so that it looks at them at once."""

    def __init__(self, messages: MessageQueue) -> None:
        super().__init__()
        self._messages = messages

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._messages.nudge()


class PromptSocket(AssociationSocket):
    """The association's socket: ``ready`` waits for data or the doorbell; ``recv`` reads
    a whole PDU into one buffer."""

    doorbell: Doorbell

    @classmethod
    def adopt(cls, original: AssociationSocket, doorbell: Doorbell) -> PromptSocket:
        """The socket pynetdicom made, as a PromptSocket (its __init__ already queued the
        transport's connection event, which running it again would repeat)."""
        prompt = cls.__new__(cls)
        prompt.__dict__.update(original.__dict__)
        prompt.doorbell = doorbell
        return prompt

    @property
    def ready(self) -> bool:
        sock = self.socket
        if sock is None or self._is_connected is False:
            return False
        try:
            readable, _, _ = select.select([sock, self.doorbell], [], [], IDLE_WAIT)
        except (OSError, ValueError):
            self.event_queue.put("Evt17")  # the transport connection closed
            return False
        if self.doorbell in readable:
            self.doorbell.clear()
        return sock in readable

    def recv(self, nr_bytes: int) -> bytearray:
        assert self.socket is not None
        buffer = bytearray(nr_bytes)
        view = memoryview(buffer)
        done = 0
        while done < nr_bytes:
            read = self.socket.recv_into(view[done:], nr_bytes - done)
            if not read:  # the connection broke: what arrived, as pynetdicom does
                return buffer[:done]
            done += read
        return buffer

    def close(self) -> None:
        super().close()
        self.doorbell.close()


def _element(tag: int, value: bytes) -> bytes:
    """One element of a command set (implicit VR little endian, PS3.7 6.3.1)."""
    return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, len(value)) + value


def _uid(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def store_response_command(rsp: C_STORE) -> bytes | None:
    """The command set of a C-STORE response as pynetdicom encodes it (a test holds the
    two equal), without building and encoding a pydicom data set for a few fixed fields.

    None for a response that carries more than its status (an error comment or an
    offending element): pynetdicom encodes those.
    """
    if rsp.ErrorComment is not None or rsp.OffendingElement is not None:
        return None
    if rsp.MessageIDBeingRespondedTo is None or rsp.Status is None:
        return None
    body = b"".join((
        _element(0x00000002, _uid(str(rsp.AffectedSOPClassUID))),
        _element(0x00000100, struct.pack("<H", 0x8001)),  # C-STORE-RSP
        _element(0x00000120, struct.pack("<H", rsp.MessageIDBeingRespondedTo)),
        _element(0x00000800, struct.pack("<H", 0x0101)),  # no data set
        _element(0x00000900, struct.pack("<H", rsp.Status)),
        _element(0x00001000, _uid(str(rsp.AffectedSOPInstanceUID))),
    ))
    return _element(0x00000000, struct.pack("<L", len(body))) + body


def _send_message(dimse: DIMSEServiceProvider, send_msg: Callable[[Any, int], None],
                  primitive: Any, context_id: int) -> None:
    """DIMSEServiceProvider.send_msg, with C-STORE responses encoded directly."""
    if isinstance(primitive, C_STORE) and primitive.MessageIDBeingRespondedTo is not None:
        command = store_response_command(primitive)
        limit = dimse.maximum_pdu_size
        if command is not None and (not limit or len(command) + 6 <= limit):
            pdata = P_DATA()
            # Message control header 0x03: a command, its last (and only) fragment.
            pdata.presentation_data_value_list.append((context_id, b"\x03" + command))
            dimse.dul.send_pdu(pdata)
            return
    send_msg(primitive, context_id)


def _serve_store_now(assoc: Association, context_id: Any, primitive: Any) -> bool:
    """Serve a C-STORE request on the upper layer's thread, which just received it.

    pynetdicom hands every request to the association's reactor, which looks for one
    every 1 ms: a sender that waits for each response loses that millisecond per
    instance. The request is served by pynetdicom's own Storage service class, as the
    reactor would (EVT_C_STORE, status checks, the response); anything else, and a
    C-STORE the reactor would refuse or abort on, is left to the reactor. An error
    escaping the service class aborts the association, as any error on this thread does.
    """
    if not isinstance(primitive, C_STORE) or not primitive.is_valid_request:
        return False
    context = assoc._accepted_cx.get(context_id)
    if context is None or assoc._sent_release or not assoc.is_established:
        return False
    service = uid_to_service_class(str(primitive.AffectedSOPClassUID))
    if not issubclass(service, StorageServiceClass):
        return False
    service(assoc).SCP(primitive, context)
    return True


def make_prompt(event: Any) -> None:
    """EVT_CONN_OPEN: make a new acceptor association wait for its work instead of polling."""
    assoc: Association = event.assoc
    dul, dimse = assoc.dul, assoc.dimse
    if dul.is_alive() or not isinstance(dul.socket, AssociationSocket):
        return  # only before its threads run
    doorbell = Doorbell()
    messages = MessageQueue(functools.partial(_serve_store_now, assoc))
    dul.socket = PromptSocket.adopt(dul.socket, doorbell)
    dul.to_provider_queue = RingingQueue(doorbell)
    dul.to_user_queue = NudgingQueue(messages)
    dimse.msg_queue = messages
    dimse.send_msg = functools.partial(_send_message, dimse, dimse.send_msg)  # type: ignore[method-assign]
    # The DUL sleeps this long after a loop without work; its select already waited.
    dul._run_loop_delay = 0.0
    # pynetdicom's standard handlers format every PDU and DIMSE message for its DEBUG log,
    # which rpacs keeps at WARNING anyway (the messages hold identifiers).
    for logged, handler in _STANDARD_LOGGING:
        assoc.unbind(logged, handler)
