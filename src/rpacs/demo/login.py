"""The demo's web login: a user who owns the demo project, with a fresh password each run."""

from __future__ import annotations

import secrets

from ..accounts import add_member, add_user, set_password
from ..errors import ConflictError
from ..installation import Installation
from .run import ACRONYM

DEMO_USER = "demo"


def demo_login(inst: Installation) -> tuple[str, str]:
    """(user name, password) of the demo's owner; a new password every run, printed once."""
    password = secrets.token_urlsafe(12)
    try:
        add_user(inst, DEMO_USER, password, actor="demo")
    except ConflictError:
        set_password(inst, DEMO_USER, password, actor="demo")
    add_member(inst, ACRONYM, DEMO_USER, "owner", actor="demo")
    return DEMO_USER, password
