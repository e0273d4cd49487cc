"""The gateway's prompt associations: pynetdicom's internals they rely on, the C-STORE
response they encode, and C-STORE statuses over a real association."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom._handlers import standard_dimse_recv_handler
from pynetdicom.association import Association
from pynetdicom.dimse_messages import C_ECHO_RQ, C_STORE_RQ, C_STORE_RSP
from pynetdicom.dimse_primitives import C_ECHO, C_STORE
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import MRImageStorage, Verification  # type: ignore[attr-defined]

from rpacs.installation import Installation
from rpacs.net import Gateway, GatewayConfig, Status, start_gateway
from rpacs.net.receiver import StoreReceiver, read_command, store_response_command
from rpacs.net.transport import REPLACED, PromptSocket
from rpacs.quarantine import Quarantine
from rpacs.quarantine import service as quarantine_service

from .dicom_factory import Instance, mr_dataset, uid
from .gateway_support import wait_for


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


def acceptor() -> Association:
    """An established acceptor association with one accepted MR context (id 1), unconnected:
    what the receiver sees of it is pynetdicom's own objects."""
    assoc = Association(AE(), "acceptor")
    context = PresentationContext()
    context.context_id, context.abstract_syntax = 1, MRImageStorage
    context.transfer_syntax = [ExplicitVRLittleEndian]
    context.result = 0x00
    assoc._accepted_cx = {1: context}
    assoc.is_established = True
    assoc.requestor.maximum_length = 0
    return assoc


def request_pdata(primitive: Any, max_pdu: int) -> list[P_DATA]:
    message = (C_STORE_RQ if isinstance(primitive, C_STORE) else C_ECHO_RQ)()
    message.primitive_to_message(primitive)
    return list(message.encode_msg(1, max_pdu))


def test_the_receiver_files_a_fragmented_c_store_and_passes_the_rest_on() -> None:
    assoc = acceptor()
    filed: list[tuple[str, str, str, bytes]] = []

    def store(_assoc: Any, sop_class: str, sop_instance: str, syntax: str,
              data_set: bytes) -> int:
        filed.append((sop_class, sop_instance, syntax, data_set))
        return Status.OUT_OF_RESOURCES

    receiver = StoreReceiver(assoc, store)
    data_set = bytes(range(256)) * 40
    rq = C_STORE()
    rq.MessageID, rq.Priority = 9, 0
    rq.AffectedSOPClassUID, rq.AffectedSOPInstanceUID = MRImageStorage, uid(7, 1, 1)
    rq.DataSet = io.BytesIO(data_set)
    fragments = request_pdata(rq, 1024)
    assert len(fragments) > 5  # command and data set over several P-DATA
    for pdata in fragments:
        receiver.receive_primitive(pdata)
    assert filed == [(MRImageStorage, uid(7, 1, 1), ExplicitVRLittleEndian, data_set)]
    assert assoc.dimse.msg_queue.empty()  # not handed to pynetdicom's reactor
    response = assoc.dul.to_provider_queue.get_nowait()
    ((context_id, pdv),) = response.presentation_data_value_list
    command = read_command(pdv[1:])
    assert context_id == 1 and command is not None
    assert (command[0x0120], command[0x0900]) == (b"\x09\x00", b"\x00\xa7")

    echo = C_ECHO()
    echo.MessageID, echo.AffectedSOPClassUID = 10, Verification
    for pdata in request_pdata(echo, 0):
        receiver.receive_primitive(pdata)
    context_id, passed = assoc.dimse.msg_queue.get_nowait()
    assert (context_id, type(passed), passed.MessageID) == (1, C_ECHO, 10)
    assert len(filed) == 1


def test_a_c_store_on_a_context_not_accepted_is_left_to_pynetdicom() -> None:
    assoc = acceptor()
    receiver = StoreReceiver(assoc, lambda *_: Status.SUCCESS)
    rq = C_STORE()
    rq.MessageID, rq.Priority = 3, 0
    rq.AffectedSOPClassUID, rq.AffectedSOPInstanceUID = MRImageStorage, uid(7, 1, 2)
    rq.DataSet = io.BytesIO(b"\x08\x00\x18\x00\x02\x00\x00\x001\x00")
    message = C_STORE_RQ()
    message.primitive_to_message(rq)
    for pdata in message.encode_msg(5, 0):  # context 5 was never accepted
        receiver.receive_primitive(pdata)
    assert assoc.dul.to_provider_queue.empty()
    context_id, passed = assoc.dimse.msg_queue.get_nowait()
    assert (context_id, type(passed), passed.MessageID) == (5, C_STORE, 3)


def pdu(primitive: P_DATA) -> bytes:
    encoder = P_DATA_TF()
    encoder.from_primitive(primitive)
    return encoder.encode()


def test_a_sender_gone_mid_instance_leaves_nothing_and_the_gateway_serves_on(
        gateway: Gateway, installation: Installation) -> None:
    ds = mr_dataset(Instance(8, 1, 1), rows=64, cols=64)
    rq = C_STORE()
    rq.MessageID, rq.Priority = 1, 0
    rq.AffectedSOPClassUID, rq.AffectedSOPInstanceUID = MRImageStorage, ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=False, implicit_vr=False, little_endian=True)
    rq.DataSet = io.BytesIO(out.getvalue())
    ae = AE(ae_title="SENDER")
    ae.add_requested_context(MRImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", gateway.port, ae_title="RPACS")
    assert assoc.is_established
    context_id = assoc.accepted_contexts[0].context_id
    message = C_STORE_RQ()
    message.primitive_to_message(rq)
    command, data = (pdu(p) for p in message.encode_msg(context_id, 0))
    raw = assoc.dul.socket.socket
    # The whole command, then half of the data set's PDU, then the connection is gone.
    raw.sendall(command + data[:len(data) // 2])
    raw.shutdown(socket.SHUT_RDWR)
    wait_for(lambda: not gateway.ae.active_associations, timeout=10)
    assoc.kill()
    assert not gateway.ae.active_associations

    again = ae.associate("127.0.0.1", gateway.port, ae_title="RPACS")
    try:
        assert int(again.send_c_store(ds).Status) == Status.SUCCESS
    finally:
        again.release()
    gateway.quarantine.flush()
    assert [e.images for e in Quarantine(installation).entries()] == [1]
    assert len(list(installation.settings.quarantine_dir.rglob("*.dcm"))) == 1


def test_a_stopped_gateway_has_recorded_what_it_received(
        installation: Installation, monkeypatch: pytest.MonkeyPatch) -> None:
    # A recorder slower than stopping the server: only waiting for it records them.
    monkeypatch.setattr(quarantine_service, "RECORD_WINDOW", 2.0)
    gw = start_gateway(installation, GatewayConfig(host="127.0.0.1", port=0,
                                                   study_timeout=3600))
    try:
        ae = AE(ae_title="SENDER")
        ae.add_requested_context(MRImageStorage)
        assoc = ae.associate("127.0.0.1", gw.port, ae_title="RPACS")
        statuses = [int(assoc.send_c_store(mr_dataset(Instance(9, 1, n))).Status)
                    for n in range(3)]
        assoc.release()
    finally:
        gw.stop()  # no flush: stopping records what was received
    assert statuses == [Status.SUCCESS] * 3
    assert [e.images for e in Quarantine(installation).entries()] == [3]
