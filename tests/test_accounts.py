"""Users, tokens, roles and the authorization decision, through the services and the CLI."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from rpacs.accounts import (
    ROLE_PERMISSIONS,
    Permission,
    Role,
    add_member,
    add_user,
    authenticate,
    authorize,
    create_token,
    list_users,
    principal_for_token,
    remove_member,
    unlock_user,
    visible_projects,
)
from rpacs.audit import AuditQuery, audit_events
from rpacs.db import User
from rpacs.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from rpacs.installation import Installation
from rpacs.settings import Settings

PASSWORD = "a long enough password"


def test_password_is_stored_as_argon2_and_checked(installation):
    add_user(installation, "alice", PASSWORD)
    with installation.db.session() as session:
        stored = session.query(User).one().password_hash
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert authenticate(installation, "ALICE", PASSWORD).name == "alice"
    with pytest.raises(AuthenticationError, match="wrong user name or password"):
        authenticate(installation, "alice", "not the password")
    with pytest.raises(AuthenticationError, match="wrong user name or password"):
        authenticate(installation, "nobody", PASSWORD)


def test_bad_names_and_short_passwords_are_refused_together(installation):
    with pytest.raises(InvalidInputError) as caught:
        add_user(installation, "../x", "short")
    assert len(caught.value.problems) == 2
    add_user(installation, "alice", PASSWORD)
    with pytest.raises(ConflictError):
        add_user(installation, "Alice", PASSWORD)


def test_failed_logins_slow_down_then_lock(tmp_path):
    inst = Installation.open(Settings(home=tmp_path / "h", database_url=None, config=None,
                                      login_lock_failures=4))
    add_user(inst, "alice", PASSWORD)
    for _ in range(3):
        with pytest.raises(AuthenticationError, match="wrong"):
            authenticate(inst, "alice", "guess")
    with inst.db.session() as session:
        user = session.query(User).one()
        wait = user.retry_after.replace(tzinfo=dt.UTC) - dt.datetime.now(dt.UTC)
        assert dt.timedelta(0) < wait <= dt.timedelta(seconds=1)  # 1 s after the third
        # Lengthened, so that a slow machine cannot let it run out before the next try.
        user.retry_after = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    # Third failure: even the right password is not checked during the wait.
    with pytest.raises(AuthenticationError, match="try again in"):
        authenticate(inst, "alice", PASSWORD)
    with inst.db.session() as session:
        session.query(User).one().retry_after = None  # the wait is over
    with pytest.raises(AuthenticationError, match="wrong"):
        authenticate(inst, "alice", "guess")
    with pytest.raises(AuthenticationError, match="locked"):
        authenticate(inst, "alice", PASSWORD)
    unlock_user(inst, "alice")
    assert authenticate(inst, "alice", PASSWORD).name == "alice"
    actions = [e["action"] for e in audit_events(inst, AuditQuery(action="login"))]
    assert actions.count("login.failed") == 4 and actions[0] == "login"
    # The name typed is logged only when it is a user: it may be a mistyped password.
    authenticate_unknown = pytest.raises(AuthenticationError)
    with authenticate_unknown:
        authenticate(inst, "my-secret-password", PASSWORD)
    assert all("my-secret" not in str(e) for e in audit_events(inst, AuditQuery()))
    inst.close()


def test_tokens_are_shown_once_and_stored_hashed(installation):
    add_user(installation, "alice", PASSWORD)
    token = create_token(installation, "alice")
    assert principal_for_token(installation, token).name == "alice"
    with installation.db.session() as session:
        from rpacs.db import ApiToken

        assert token not in session.query(ApiToken).one().token_sha256
    with pytest.raises(AuthenticationError, match="rpacs token create"):
        principal_for_token(installation, token + "x")


@pytest.mark.parametrize("role", list(Role))
def test_authorize_follows_the_role_table(installation, make_project, role):
    make_project(acronym="ALPHA")
    add_user(installation, "alice", PASSWORD)
    add_member(installation, "ALPHA", "alice", role.value)
    alice = authenticate(installation, "alice", PASSWORD)
    for permission in Permission:
        if permission in ROLE_PERMISSIONS[role]:
            assert authorize(installation, alice, "alpha", permission).role == role
        else:
            with pytest.raises(PermissionDeniedError, match=role.value):
                authorize(installation, alice, "ALPHA", permission)


def test_a_project_one_is_not_in_does_not_exist(installation, make_project):
    make_project(acronym="ALPHA")
    make_project(acronym="BRAVO")
    add_user(installation, "alice", PASSWORD)
    add_user(installation, "root", PASSWORD, is_admin=True)
    add_member(installation, "ALPHA", "alice", "member")
    alice = authenticate(installation, "alice", PASSWORD)
    root = authenticate(installation, "root", PASSWORD)
    with pytest.raises(NotFoundError) as hidden:
        authorize(installation, alice, "BRAVO", Permission.VIEW)
    with pytest.raises(NotFoundError) as missing:
        authorize(installation, alice, "NOSUCH", Permission.VIEW)
    assert str(hidden.value).replace("BRAVO", "X") == str(missing.value).replace("NOSUCH", "X")
    assert [a.project.acronym for a in visible_projects(installation, alice)] == ["ALPHA"]
    assert [a.project.acronym for a in visible_projects(installation, root)] == ["ALPHA",
                                                                                 "BRAVO"]
    assert authorize(installation, root, "BRAVO", Permission.DOWNLOAD).role is None


def test_membership_changes_are_audited(installation, make_project):
    project = make_project(acronym="ALPHA")
    add_user(installation, "alice", PASSWORD)
    add_member(installation, "ALPHA", "alice", "member")
    add_member(installation, "ALPHA", "alice", "owner", actor="root")
    assert list_users(installation)[0].projects == {"ALPHA": "owner"}
    remove_member(installation, "ALPHA", "alice")
    with pytest.raises(NotFoundError):
        remove_member(installation, "ALPHA", "alice")
    with pytest.raises(InvalidInputError, match="--role"):
        add_member(installation, "ALPHA", "alice", "boss")
    events = audit_events(installation, AuditQuery(project_id=project.id, action="member."))
    assert [(e["action"], e["details"]["role"]) for e in events] == [
        ("member.remove", "owner"), ("member.add", "owner"), ("member.add", "member")]
    assert events[1]["actor"] == "root" and events[1]["details"]["previous"] == "member"


def test_cli_users_members_and_tokens(rpacs, make_project, tmp_path):
    make_project(acronym="ALPHA")
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    assert rpacs("user", "add", "alice", "--password-file", str(secret)).exit_code == 0
    asked = rpacs("user", "add", "bob", "--admin", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert asked.exit_code == 0, asked.output
    mismatch = rpacs("user", "add", "carol", input=f"{PASSWORD}\nother password\n"
                                                   f"{PASSWORD}\n{PASSWORD}\n")
    assert mismatch.exit_code == 0 and "do not match" in mismatch.output
    assert rpacs("member", "add", "ALPHA", "alice", "--role", "data-manager").exit_code == 0
    listed = rpacs("user", "list")
    assert "alice: ALPHA (data-manager)" in listed.output and "bob [admin]" in listed.output
    token = rpacs("token", "create", "alice").output.strip()
    assert token.startswith("rpacs_") and len(token) > 40
    assert rpacs("member", "remove", "ALPHA", "alice").exit_code == 0
    gone = rpacs("member", "remove", "ALPHA", "alice")
    assert gone.exit_code == 2 and "not a member" in gone.output
    bad = rpacs("user", "add", "dave", "--password-file", str(tmp_path / "missing"))
    assert bad.exit_code == 2 and "--password-file" in bad.output


def test_installed_script_creates_a_user(subprocess_env, tmp_path):
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD)
    script = Path(sys.executable).with_name("rpacs")
    done = subprocess.run([str(script), "user", "add", "eve", "--password-file", str(secret)],
                          env=subprocess_env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    listed = subprocess.run([str(script), "user", "list", "--json"], env=subprocess_env,
                            capture_output=True, text=True, check=True)
    assert '"name": "eve"' in listed.stdout


def test_session_key_is_made_once_and_private(settings):
    key = settings.session_secret
    path = settings.home / "web-session.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert Settings(home=settings.home).session_secret == key != settings.installation_secret


def test_the_web_migration_creates_what_the_models_describe(installation):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from rpacs.db import Base

    ours = {"users", "api_tokens", "memberships", "tag_checks"}
    with installation.db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    mine = [d for d in differences if any(t in repr(d) for t in ours)]
    assert mine == []
