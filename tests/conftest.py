"""Shared fixtures: a fresh installation per test, a project factory and the command line.

Library code is handed its Settings explicitly; only the command line reads the environment,
so CLI tests pass RPACS_HOME through click's runner or the subprocess's environment.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from rpacs.db import Project
from rpacs.installation import Installation
from rpacs.projects import ProjectSpec, create_project
from rpacs.settings import Settings

#: A valid project; tests change what they are about.
PROJECT = {
    "acronym": "TESTPROJ",
    "rek": "2024/12345",
    "pi_name": "Principal Investigator",
    "pi_email": "pi@example.org",
    "start_date": "2024-01-01",
    "end_date": "2028-12-31",
    "participant_pattern": r"TP-\d{4}",
    "events": ["baseline", "followup"],
}


@pytest.fixture
def rpacs_home(tmp_path: Path) -> Path:
    """An RPACS_HOME of the test's own (created by Installation.open or the CLI)."""
    return tmp_path / "home"


@pytest.fixture
def settings(rpacs_home: Path) -> Settings:
    # Every setting explicit, so that an RPACS_* variable of the machine running the tests
    # can never point a test at a real database.
    return Settings(home=rpacs_home, database_url=None, config=None, workers=2)


@pytest.fixture
def installation(settings: Settings) -> Iterator[Installation]:
    inst = Installation.open(settings)
    yield inst
    inst.close()


@pytest.fixture
def make_project(installation: Installation) -> Callable[..., Project]:
    """``make_project(acronym=..., **changes)`` creates a valid project with those changes."""

    def make(**changes: Any) -> Project:
        return create_project(installation, ProjectSpec(**{**PROJECT, **changes}))

    return make


@pytest.fixture
def cli_env(rpacs_home: Path) -> dict[str, str | None]:
    """Environment changes for the command line: this test's home, no other setting."""
    unset: dict[str, str | None] = {f"RPACS_{name.upper()}": None for name in Settings.names()}
    return {**unset, "RPACS_HOME": str(rpacs_home)}


@pytest.fixture
def rpacs(cli_env: dict[str, str | None]) -> Callable[..., Result]:
    """``rpacs("project", "list", input=None)`` runs the command line in-process."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        from rpacs.cli import cli

        return runner.invoke(cli, list(args), env=cli_env, input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def subprocess_env(cli_env: dict[str, str | None]) -> dict[str, str]:
    """The whole environment for running the installed ``rpacs`` script."""
    env = {k: v for k, v in os.environ.items() if k not in cli_env}
    return {**env, **{k: v for k, v in cli_env.items() if v is not None}}


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database (``make test`` starts a cluster); skipped without one."""
    url = os.environ.get("RPACS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("RPACS_TEST_POSTGRES_URL not set")
    name = f"rpacs_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, query = url.partition("?")
    yield f"{base.rsplit('/', 1)[0]}/{name}?{query}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def web_world(tmp_path_factory: pytest.TempPathFactory):
    """Projects ALPHA (with data) and BRAVO, and one user per role (see tests/web_world.py).

    Shared by the tests of a module: they may mark tags checked, but leave users and
    memberships as they found them.
    """
    from .web_world import build_world

    world = build_world(tmp_path_factory.mktemp("web") / "home",
                        tmp_path_factory.mktemp("web-input"))
    yield world
    world.inst.close()


@pytest.fixture(scope="module")
def subprocess_env_module() -> dict[str, str]:
    """The environment for a server the tests of a module share (RPACS_HOME set by them)."""
    unset = {f"RPACS_{name.upper()}" for name in Settings.names()}
    return {k: v for k, v in os.environ.items() if k not in unset}
