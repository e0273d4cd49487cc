"""The gateway's prompt associations: pynetdicom's internals they rely on, the C-STORE
response they encode, and C-STORE statuses over a real association."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydicom import dcmread
from pynetdicom import AE, evt
from pynetdicom._handlers import standard_dimse_recv_handler
from pynetdicom.association import Association
from pynetdicom.dimse_messages import C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.sop_class import MRImageStorage  # type: ignore[attr-defined]

from rpacs.installation import Installation
from rpacs.net import Gateway, GatewayConfig, Status, start_gateway
from rpacs.net.transport import REPLACED, PromptSocket, store_response_command
from rpacs.quarantine import Quarantine

from .dicom_factory import Instance, mr_dataset, uid


def test_the_pynetdicom_internals_replaced_are_there() -> None:
    # Pinned in pyproject (pynetdicom >=3.0,<3.1): a newer pynetdicom fails here first.
    assoc = Association(AE(), "acceptor")
    owners = {"dul": assoc.dul, "dimse": assoc.dimse, "assoc": assoc}
    for owner, names in REPLACED.items():
        for name in names:
            assert hasattr(owners[owner], name), f"pynetdicom has no {owner}.{name}"
    assert isinstance(assoc.dul._run_loop_delay, float)


@pytest.mark.parametrize("status", [0x0000, 0xA700, 0xC000, 0xB000])
def test_store_responses_are_encoded_as_pynetdicom_encodes_them(status: int) -> None:
    rsp = C_STORE()
    rsp.MessageID = rsp.MessageIDBeingRespondedTo = 7
    rsp.AffectedSOPClassUID = MRImageStorage
    rsp.AffectedSOPInstanceUID = uid(1, 2, 345)  # odd length: padded
    rsp.Status = status
    message = C_STORE_RSP()
    message.primitive_to_message(rsp)
    (pdata,) = list(message.encode_msg(1, 0))
    ((context_id, pdv),) = pdata.presentation_data_value_list
    assert (context_id, pdv[:1]) == (1, b"\x03")
    assert store_response_command(rsp) == pdv[1:]
    rsp.ErrorComment = "left to pynetdicom"
    assert store_response_command(rsp) is None


@pytest.fixture
def gateway(installation: Installation) -> Iterator[Gateway]:
    gw = start_gateway(installation, GatewayConfig(host="127.0.0.1", port=0,
                                                   study_timeout=3600))
    yield gw
    gw.stop()


def test_c_store_statuses_over_a_prompt_association(gateway: Gateway,
                                                    installation: Installation) -> None:
    good = mr_dataset(Instance(5, 1, 1))
    no_study = mr_dataset(Instance(5, 1, 2))
    del no_study.StudyInstanceUID
    blocked = mr_dataset(Instance(6, 1, 1))
    # A file where the study's folder would go: the quarantine cannot write there.
    root = installation.settings.quarantine_dir
    root.mkdir(parents=True, exist_ok=True)
    (root / gateway.quarantine.store.folder_name(blocked.StudyInstanceUID)).write_bytes(b"")
    ae = AE(ae_title="SENDER")
    ae.add_requested_context(MRImageStorage)
    assoc = ae.associate("127.0.0.1", gateway.port, ae_title="RPACS")
    assert assoc.is_established
    try:
        statuses = [int(assoc.send_c_store(ds).Status) for ds in (good, no_study, blocked)]
        sockets = [a.dul.socket for a in gateway.ae.active_associations]
        logging = [h for a in gateway.ae.active_associations
                   for h, _ in a.get_handlers(evt.EVT_DIMSE_RECV)]
    finally:
        assoc.release()
    assert statuses == [Status.SUCCESS, Status.CANNOT_UNDERSTAND, Status.OUT_OF_RESOURCES]
    assert sockets and all(isinstance(s, PromptSocket) for s in sockets)
    assert standard_dimse_recv_handler not in logging
    assert not assoc.is_established and assoc.is_released
    gateway.quarantine.flush()
    (entry,) = Quarantine(installation).entries()
    assert (entry.study_uid, entry.images) == (uid(5), 1)
    stored = next(p for p in root.rglob("*.dcm"))
    assert dcmread(stored).SOPInstanceUID == good.SOPInstanceUID
