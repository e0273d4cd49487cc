"""The gateway: rpacs as a DICOM node (Verification, Storage, Query/Retrieve SCP).

:func:`start_gateway` starts the services in background threads and returns a running
:class:`Gateway`; ``rpacs scp`` runs one in the foreground, ``rpacs serve`` can run one beside
the web app. Beside the DICOM server, one *monitor* thread closes studies that were quiet for
the study timeout and routes them, imports late arrivals of assigned studies, and purges
the quarantine once a day.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from ..deid import quiet  # noqa: F401  (pydicom's value warnings off)
from ..installation import Installation
from ..quarantine import Quarantine
from .handlers import (
    handle_echo,
    handle_find,
    handle_get,
    handle_move,
    handle_store,
    receive_instance,
)
from .remotes import check_ae_title
from .transport import make_prompt

LOG = logging.getLogger("rpacs.net")
#: How often the quarantine is purged of studies past their retention.
PURGE_INTERVAL = 24 * 3600.0
#: Seconds a stopping gateway waits for the recorder to record what was received.
STOP_FLUSH = 10.0
#: The largest PDU we receive: larger PDUs mean fewer Python-level reads per instance.
MAX_PDU = 1 << 20


@dataclass
class GatewayConfig:
    ae_title: str = "RPACS"
    host: str = "0.0.0.0"
    port: int = 11112
    study_timeout: float = 16.0
    #: Seconds between two passes of the monitor; by default a quarter of the timeout.
    monitor_interval: float | None = None
    max_associations: int = 32


def build_ae(config: GatewayConfig) -> AE:
    """The application entity: every storage SOP class in every transfer syntax pynetdicom
    knows (compressed ones included, accepted as sent), plus verification and Q/R."""
    ae = AE(ae_title=check_ae_title(config.ae_title, "--ae-title"))
    ae.maximum_pdu_size = MAX_PDU
    ae.maximum_associations = config.max_associations
    # Any called AE title is accepted: auto-ID projects and routing rules tell senders apart
    # by the title they call us by.
    ae.require_called_aet = False
    for context in AllStoragePresentationContexts:
        # scu_role/scp_role: a C-GET requester asks us to act as Storage SCU back to it.
        ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES,
                                 scu_role=True, scp_role=True)
    for sop_class in (
        Verification,
        PatientRootQueryRetrieveInformationModelFind,
        PatientRootQueryRetrieveInformationModelMove,
        PatientRootQueryRetrieveInformationModelGet,
        StudyRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelMove,
        StudyRootQueryRetrieveInformationModelGet,
    ):
        ae.add_supported_context(sop_class)
    # C-MOVE opens its own association to the destination, proposing these.
    for context in AllStoragePresentationContexts[:127]:
        ae.add_requested_context(context.abstract_syntax)
    return ae


@dataclass
class Gateway:
    """A running gateway; :meth:`stop` ends the server and the monitor."""

    inst: Installation
    config: GatewayConfig
    ae: AE
    server: Any
    quarantine: Quarantine
    _stop: threading.Event = field(default_factory=threading.Event)
    _monitor: threading.Thread | None = None
    _last_purge: float = 0.0

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        """Stop receiving; what was received is recorded in the index before this returns
        (unless the index cannot be written for STOP_FLUSH seconds: the next start's
        recovery records it then)."""
        self._stop.set()
        self.server.shutdown()
        if self._monitor is not None:
            self._monitor.join()
        if not self.quarantine.flush(STOP_FLUSH):
            LOG.warning("stopped with received instances not yet recorded in the index; "
                        "the next start records them")

    def wait(self) -> None:
        """Block until :meth:`stop` (or Ctrl-C in the caller)."""
        while not self._stop.wait(0.5):
            pass

    def monitor_once(self) -> None:
        """One pass of the monitor: route complete studies, import late arrivals, purge."""
        from ..routing import import_assigned, route_study

        self.quarantine.flush()  # every instance received so far counts for "quiet"
        for study_id in self.quarantine.close_quiet_studies(self.config.study_timeout):
            route_study(self.inst, study_id)
        for study_id in self.quarantine.assigned_with_late_arrivals(self.config.study_timeout):
            import_assigned(self.inst, study_id, actor="gateway")
        if time.monotonic() - self._last_purge >= PURGE_INTERVAL or not self._last_purge:
            self._last_purge = time.monotonic()
            summary = self.quarantine.purge()
            if summary.studies or summary.orphan_folders:
                LOG.info("quarantine purge: %d studies, %d files", summary.studies,
                         summary.files)

    def _run_monitor(self) -> None:
        interval = self.config.monitor_interval or max(0.05, self.config.study_timeout / 4)
        while not self._stop.wait(interval):
            try:
                self.monitor_once()
            except Exception:  # keep receiving; the next pass retries
                LOG.exception("gateway monitor pass failed")


def start_gateway(inst: Installation, config: GatewayConfig | None = None) -> Gateway:
    """Start the DICOM services and the monitor in background threads."""
    config = config or GatewayConfig(
        ae_title=inst.settings.ae_title, port=inst.settings.dicom_port,
        study_timeout=inst.settings.study_timeout)
    quarantine = Quarantine(inst, background=True)
    recovered = quarantine.recover()
    if recovered:
        LOG.warning("recorded %d quarantine files a previous run had not recorded", recovered)
    ae = build_ae(config)
    handlers = [
        # Before an association's threads start: they wait for work instead of polling.
        # C-STORE requests are filed by net.receiver through receive_instance, without
        # pynetdicom's messages; EVT_C_STORE serves any it leaves to pynetdicom.
        (evt.EVT_CONN_OPEN, make_prompt, [partial(receive_instance, quarantine)]),
        (evt.EVT_C_ECHO, handle_echo),
        # pynetdicom passes the listed arguments after the event.
        (evt.EVT_C_STORE, handle_store, [quarantine]),
        (evt.EVT_C_FIND, handle_find, [inst]),
        (evt.EVT_C_MOVE, handle_move, [inst]),
        (evt.EVT_C_GET, handle_get, [inst]),
    ]
    server = ae.start_server((config.host, config.port), block=False, evt_handlers=handlers)
    gateway = Gateway(inst=inst, config=config, ae=ae, server=server, quarantine=quarantine)
    gateway._monitor = threading.Thread(target=gateway._run_monitor, name="rpacs-monitor",
                                        daemon=True)
    gateway._monitor.start()
    return gateway

