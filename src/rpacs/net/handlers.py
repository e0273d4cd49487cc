"""The event handlers of the gateway's DICOM services: each small, each one job.

C-STORE writes what was sent, byte for byte, into the quarantine and answers success only
once the file is in place. C-FIND, C-MOVE and C-GET answer from the archive index, limited
to the projects the calling AE is registered for.
No handler logs a value of the data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pydicom import Dataset, dcmread
from pynetdicom.association import Association
from pynetdicom.events import Event

from ..deid import quiet  # noqa: F401  (pydicom's value warnings off)
from ..errors import DicomInputError, RpacsError
from ..installation import Installation
from ..quarantine import Arrival, Quarantine, utcnow
from .enum import Status
from .filemeta import file_meta
from .query import QueryError, RetrieveRequest, find_matches, instances_to_retrieve
from .remotes import destination_for, visible_projects

LOG = logging.getLogger("rpacs.net")


def called_ae_of(event: Event) -> str:
    """The AE title the peer called us by (one service answers to several titles)."""
    return called_ae_in(event.assoc)


def called_ae_in(assoc: Association) -> str:
    primitive = assoc.requestor.primitive
    called = getattr(primitive, "called_ae_title", "") if primitive is not None else ""
    return str(called or assoc.acceptor.ae_title).strip()


def calling_ae_of(event: Event) -> str:
    return str(event.assoc.requestor.ae_title).strip()


def handle_echo(event: Event) -> int:
    """C-ECHO: always success (the association was accepted)."""
    return Status.SUCCESS


def handle_store(event: Event, quarantine: Quarantine) -> int:
    """C-STORE (pynetdicom's event): file the dataset as sent into the quarantine."""
    request = event.request
    return receive_instance(quarantine, event.assoc, str(request.AffectedSOPClassUID),
                            str(request.AffectedSOPInstanceUID),
                            str(event.context.transfer_syntax), request.DataSet.getvalue())


def receive_instance(quarantine: Quarantine, assoc: Association, sop_class: str,
                     sop_instance: str, transfer_syntax: str, data_set: bytes) -> int:
    """File a received data set as sent into the quarantine, in the DICOM file format (the
    sender's transfer syntax: compressed pixel data stays as it came); the C-STORE status,
    a failure when it was not kept. Also called by net.receiver without pynetdicom's event.
    """
    calling = str(assoc.requestor.ae_title).strip()
    arrival = Arrival(calling_ae=calling, called_ae=called_ae_in(assoc), at=utcnow())
    try:
        quarantine.receive(file_meta(sop_class, sop_instance, transfer_syntax, calling)
                           + data_set, arrival)
    except DicomInputError as exc:
        LOG.warning("C-STORE from %s refused: %s", calling, exc.reason)
        return Status.CANNOT_UNDERSTAND
    except Exception as exc:  # never answer success for an instance that was not kept
        LOG.error("C-STORE from %s failed: %s", calling, type(exc).__name__)
        return Status.OUT_OF_RESOURCES
    return Status.SUCCESS


def handle_find(event: Event, inst: Installation) -> Iterator[tuple[int, Dataset | None]]:
    """C-FIND on the archive index: matches of the projects the caller may see."""
    projects = visible_projects(inst, calling_ae_of(event))
    if not projects:
        yield Status.NOT_AUTHORIZED, None
        return
    try:
        matches = find_matches(inst, projects, event.identifier)
        for match in matches:
            if event.is_cancelled:
                yield 0xFE00, None
                return
            yield Status.PENDING, match
    except QueryError as exc:
        LOG.warning("C-FIND from %s refused: %s", calling_ae_of(event), exc)
        yield Status.IDENTIFIER_DOES_NOT_MATCH, None
    except RpacsError as exc:
        LOG.error("C-FIND failed: %s", exc)
        yield Status.UNABLE_TO_PROCESS, None


def _retrieve(event: Event, inst: Installation, destination_projects: set[int] | None
              ) -> Iterator[Any]:
    """The shared part of C-MOVE and C-GET after the destination: count, then datasets."""
    projects = visible_projects(inst, calling_ae_of(event))
    if destination_projects is not None:
        projects &= destination_projects
    try:
        request: RetrieveRequest = instances_to_retrieve(inst, projects, event.identifier)
    except QueryError as exc:
        LOG.warning("retrieve from %s refused: %s", calling_ae_of(event), exc)
        yield 0
        return
    yield len(request.paths)
    for path in request.paths:
        if event.is_cancelled:
            yield 0xFE00, None
            return
        try:
            # Stored files are sent as stored: pixel data is read as bytes, not decoded.
            yield Status.PENDING, dcmread(path)
        except (OSError, ValueError) as exc:
            LOG.error("retrieve: a stored file could not be read (%s)", type(exc).__name__)
            yield Status.UNABLE_TO_PROCESS, None
            return


def handle_move(event: Event, inst: Installation) -> Iterator[Any]:
    """C-MOVE: send the matches to a destination registered for their project."""
    calling = calling_ae_of(event)
    if not visible_projects(inst, calling):
        yield None, None
        return
    destination = destination_for(inst, str(event.move_destination).strip())
    if destination is None:
        yield None, None  # pynetdicom answers 0xA801: move destination unknown
        return
    yield destination.host, destination.port
    yield from _retrieve(event, inst, destination.projects)


def handle_get(event: Event, inst: Installation) -> Iterator[Any]:
    """C-GET: send the matches back over the same association."""
    if not visible_projects(inst, calling_ae_of(event)):
        yield 0
        return
    yield from _retrieve(event, inst, None)
