"""``rpacs demo --serve`` and ``rpacs serve``: the installed script serving real HTTP."""

from __future__ import annotations

import re
import signal
import socket
from typing import Any

import httpx
import pytest

from .server import free_port, running


def test_demo_serve_prints_a_login_that_works(tmp_path, subprocess_env):
    port = free_port()
    log = tmp_path / "demo.log"
    with running(["demo", "--serve", "--port", str(port)], subprocess_env, port, log) as url:
        printed = log.read_text()
        assert f"web:      {url}/" in printed
        user, password = re.search(r"log in as (\S+) / (\S+)", printed).groups()
        with httpx.Client(base_url=url) as client:
            form = client.get("/login").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
            done = client.post("/login", data={"name": user, "password": password,
                                               "csrf_token": token})
            assert done.status_code == 303
            projects = client.get("/api/projects").json()
            assert [p["acronym"] for p in projects] == ["DEMO-MR"]
            assert projects[0]["role"] == "owner" and projects[0]["instances"] > 0
            review = client.get("/api/projects/DEMO-MR/review", params={"flagged": "1"})
            assert review.status_code == 200 and review.json()["tags"] == []


def test_serve_with_dicom_port_receives_and_stops_cleanly(tmp_path, subprocess_env):
    from . import dicom_factory as f
    from .gateway_support import dcmtk, storescu
    from .gateway_support import free_port as free_dicom_port

    port, dicom_port = free_port(), free_dicom_port()
    log = tmp_path / "serve.log"
    paths = f.write_study(tmp_path / "study", series=1, per_series=2)
    with running(["serve", "--port", str(port), "--dicom-port", str(dicom_port),
                  "--ae-title", "WEBPACS"], subprocess_env, port, log):
        assert f"WEBPACS on port {dicom_port}" in log.read_text()
        echo = dcmtk("echoscu", "-aec", "WEBPACS", "127.0.0.1", str(dicom_port))
        assert echo.returncode == 0, echo.stderr
        sent = storescu(dicom_port, *paths, called="WEBPACS")
        assert sent.returncode == 0, sent.stderr
    # Stopped with the web server: the port is free again, and the log says so.
    assert "rpacs DICOM services: stopped" in log.read_text()
    with socket.socket() as probe:  # (associations just closed linger in TIME_WAIT)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("0.0.0.0", dicom_port))
    received = list((tmp_path / "home").rglob("quarantine/**/*"))
    assert sum(1 for p in received if p.is_file()) == 2


@pytest.mark.parametrize(("options", "web", "dicom"), [
    ([], "127.0.0.1", "127.0.0.1"),
    (["--host", "10.0.0.5"], "10.0.0.5", "10.0.0.5"),
    (["--dicom-host", "0.0.0.0"], "127.0.0.1", "0.0.0.0"),
])
def test_serve_binds_dicom_where_the_web_app_binds(monkeypatch, rpacs, options, web, dicom):
    """``--host 127.0.0.1 --dicom-port N`` used to open the DICOM port (C-STORE into the
    quarantine, from any AE title) on every interface; it follows --host unless
    --dicom-host says otherwise."""
    import uvicorn

    seen: dict[str, Any] = {}

    class FakeGateway:
        port = 11112

        def stop(self) -> None:
            seen["stopped"] = True

    def fake_start(inst, config):  # type: ignore[no-untyped-def]
        seen["config"] = config
        return FakeGateway()

    monkeypatch.setattr("rpacs.net.start_gateway", fake_start)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: seen.setdefault("uvicorn", k))
    previous = signal.getsignal(signal.SIGTERM)
    try:
        result = rpacs("serve", "--dicom-port", "11112", *options)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert result.exit_code == 0, result.output
    assert seen["uvicorn"]["host"] == web and seen["stopped"]
    assert seen["config"].host == dicom
    assert f"on port 11112, address {dicom}" in result.output


def test_dicom_host_needs_dicom_port(rpacs):
    refused = rpacs("serve", "--dicom-host", "0.0.0.0")
    assert refused.exit_code == 2
    assert "--dicom-host: only with --dicom-port" in refused.output
