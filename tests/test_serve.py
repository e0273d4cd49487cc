"""``rpacs demo --serve`` and ``rpacs serve``: the installed script serving real HTTP."""

from __future__ import annotations

import re

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
