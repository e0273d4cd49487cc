"""Prompt associations: pynetdicom's association threads woken by events, not by polling.

pynetdicom (3.0) runs two threads per association that poll: the upper layer (DUL)
checks its socket and its outgoing queue and sleeps ``_run_loop_delay`` (1 ms) when both
were empty; the association's reactor looks for a received DIMSE message every 1 ms.
A C-STORE sender waits for each response before it sends the next instance, so these
sleeps add up to several times what writing the file costs, and a shorter sleep only
turns them into busy loops competing for the GIL and the CPU.

:func:`make_prompt` (bound to ``EVT_CONN_OPEN``, which pynetdicom fires after it built the
acceptor's association and before it starts its threads) keeps pynetdicom's reactors but
lets each of them *wait* for its work instead, and shortens the way of a C-STORE:

- the DUL blocks in ``poll`` on the peer's socket and a doorbell that rings whenever
  the association queues a primitive to send;
- the reactor's non-blocking look for a message waits until one arrives (or the peer asks
  to release or abort), at most :data:`IDLE_WAIT`;
- PDUs are read with ``recv_into`` into one buffer instead of in 4 KB pieces;
- C-STORE requests are served on the DUL's thread, which received them: by a
  :class:`~rpacs.net.receiver.StoreReceiver` when given a store function, else (and for
  what the receiver leaves to pynetdicom) by pynetdicom's Storage service class; the
  response is encoded directly;
- pynetdicom's standard handlers, which format every PDU for a DEBUG log, are unbound.

Both waits end after :data:`IDLE_WAIT` at the latest, so timers, kills and anything else
the reactors check once per loop are seen as before, only without the spinning.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import select
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
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class
from pynetdicom.transport import AssociationSocket

from ..deid import quiet  # noqa: F401  (pydicom's value warnings off)
from .receiver import StoreFunction, StoreReceiver, send_command, store_response_command

#: Longest a waiting reactor sleeps before it looks at its timers and flags again.
IDLE_WAIT = 0.02
#: pynetdicom attributes this module replaces; a test holds them to the pinned versions.
REPLACED = {
    "dul": ("socket", "to_provider_queue", "to_user_queue", "_run_loop_delay"),
    "dimse": ("msg_queue", "send_msg", "maximum_pdu_size", "receive_primitive"),
    "assoc": ("_accepted_cx", "_sent_release", "is_established", "unbind", "get_handlers"),
}
_STANDARD_LOGGING = (
    (evt.EVT_DIMSE_RECV, standard_dimse_recv_handler),
    (evt.EVT_DIMSE_SENT, standard_dimse_sent_handler),
    (evt.EVT_PDU_RECV, standard_pdu_recv_handler),
    (evt.EVT_PDU_SENT, standard_pdu_sent_handler),
)


class Doorbell:
    """A pipe that wakes a ``poll``: :meth:`ring` from any thread, :meth:`clear` after.

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
    """A queue that rings a doorbell when another thread than its reader puts on it.

    The reader (the DUL) looks at the queue before it waits again: what it put there
    itself, it sends without being woken.
    """

    def __init__(self, doorbell: Doorbell, reader: threading.Thread) -> None:
        super().__init__()
        self._doorbell = doorbell
        self._reader = reader

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        if threading.current_thread() is not self._reader:
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
    _poller: Any

    @classmethod
    def adopt(cls, original: AssociationSocket, doorbell: Doorbell) -> PromptSocket:
        """The socket pynetdicom made, as a PromptSocket (its __init__ already queued the
        transport's connection event, which running it again would repeat)."""
        prompt = cls.__new__(cls)
        prompt.__dict__.update(original.__dict__)
        prompt.doorbell = doorbell
        # poll, not select: no limit on descriptor numbers (a busy server has many).
        prompt._poller = select.poll()
        prompt._poller.register(doorbell.fileno(), select.POLLIN)
        if prompt.socket is not None:
            prompt._poller.register(prompt.socket.fileno(), select.POLLIN)
        return prompt

    @property
    def ready(self) -> bool:
        if self.socket is None or self._is_connected is False:
            return False
        try:
            events = self._poller.poll(IDLE_WAIT * 1000)
        except OSError:
            self.event_queue.put("Evt17")  # the transport connection closed
            return False
        readable = False
        for fd, _ in events:
            if fd == self.doorbell.fileno():
                self.doorbell.clear()
            else:  # data, or the peer closed (recv then reads nothing)
                readable = True
        return readable

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


def _send_message(assoc: Association, send_msg: Callable[[Any, int], None],
                  primitive: Any, context_id: int) -> None:
    """DIMSEServiceProvider.send_msg, with C-STORE responses encoded directly."""
    if isinstance(primitive, C_STORE) and primitive.MessageIDBeingRespondedTo is not None:
        command = store_response_command(primitive)
        if command is not None and send_command(assoc, context_id, command):
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


def make_prompt(event: Any, store: StoreFunction | None = None) -> None:
    """EVT_CONN_OPEN: make a new acceptor association wait for its work instead of polling;
    with ``store``, C-STORE requests are received by a :class:`StoreReceiver` filing with it.
    """
    assoc: Association = event.assoc
    dul, dimse = assoc.dul, assoc.dimse
    if dul.is_alive() or not isinstance(dul.socket, AssociationSocket):
        return  # only before its threads run
    doorbell = Doorbell()
    messages = MessageQueue(functools.partial(_serve_store_now, assoc))
    dul.socket = PromptSocket.adopt(dul.socket, doorbell)
    dul.to_provider_queue = RingingQueue(doorbell, dul)
    dul.to_user_queue = NudgingQueue(messages)
    dimse.msg_queue = messages
    dimse.send_msg = functools.partial(  # type: ignore[method-assign]
        _send_message, assoc, dimse.send_msg)
    if store is not None:
        dimse.receive_primitive = StoreReceiver(  # type: ignore[method-assign]
            assoc, store).receive_primitive
    # The DUL sleeps this long after a loop without work; its poll already waited.
    dul._run_loop_delay = 0.0
    # pynetdicom's standard handlers format every PDU and DIMSE message for its DEBUG log,
    # which rpacs keeps at WARNING anyway (the messages hold identifiers).
    for logged, handler in _STANDARD_LOGGING:
        assoc.unbind(logged, handler)
