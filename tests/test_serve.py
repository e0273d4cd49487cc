"""``rpacs demo --serve`` and ``rpacs serve``: the installed script serving real HTTP."""

from __future__ import annotations

import re
import socket

import httpx

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
