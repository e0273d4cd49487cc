"""Users, passwords, API tokens, project membership and the authorization decision.

Nothing here knows about HTTP: the web app and the command line call these functions, and
the one question every route asks — may this principal do this to this project? — is
answered by :func:`authorize` alone.

Passwords are hashed with Argon2id (argon2-cffi's defaults, upgraded on login when they
change). API tokens carry 256 random bits, so a plain SHA-256 of them is as good as a slow
hash and lets a token be found with one indexed lookup.

Failed logins slow down and then lock: from the third failure in a row, no password is even
checked for 1, 2, 4 … seconds (at most 5 minutes); after ``Settings.login_lock_failures``
the account is locked until an admin runs ``rpacs user unlock``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..audit import record_event
from ..db import ApiToken, Membership, Project, User
from ..errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from ..installation import Installation
from .content import Principal, ProjectAccess, UserSummary
from .enum import Permission, Role

USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{1,63}")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # Argon2 hashes anything; this only keeps a request from being huge
#: Failures in a row before the slow-down starts, and its longest wait.
SLOW_DOWN_AFTER = 3
LONGEST_WAIT = dt.timedelta(minutes=5)
TOKEN_PREFIX = "rpacs_"

_hasher = PasswordHasher()
#: Verified against when the user name is unknown, so that a wrong name costs as much time
#: as a wrong password and the answer's timing does not tell which names exist.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; they were written in UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=dt.UTC)


def _find_user(session: Session, name: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.name) == (name or "").lower()))


def _project(session: Session, acronym: str) -> Project | None:
    return session.scalar(
        select(Project).where(func.lower(Project.acronym) == (acronym or "").lower()))


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInputError(f"password: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidInputError(f"password: at most {MAX_PASSWORD} characters")


# --- users ------------------------------------------------------------------------------


def add_user(inst: Installation, name: str, password: str, *, is_admin: bool = False,
             actor: str = "cli") -> None:
    """Create a user; InvalidInputError for a bad name or short password, ConflictError if taken."""
    problems = []
    if not USER_NAME.fullmatch(name or ""):
        problems.append(f"name: '{name}' must be 2-64 letters, digits, '.', '_', '@' or '-' "
                        "and start with a letter or digit")
    try:
        _check_password(password)
    except InvalidInputError as exc:
        problems.extend(exc.problems)
    if problems:
        raise InvalidInputError(problems)
    with inst.db.session() as session:
        if _find_user(session, name) is not None:
            raise ConflictError(f"a user named '{name}' already exists")
        session.add(User(name=name, password_hash=_hasher.hash(password), is_admin=is_admin,
                         failed_logins=0, locked=False))
        record_event(session, actor, "user.add", user=name, admin=is_admin)


def set_password(inst: Installation, name: str, password: str, actor: str = "cli") -> None:
    """Give a user a new password (and unlock the account); API tokens stay valid."""
    _check_password(password)
    with inst.db.session() as session:
        user = _find_user(session, name)
        if user is None:
            raise NotFoundError(f"no user '{name}' (see: rpacs user list)")
        user.password_hash = _hasher.hash(password)
        user.failed_logins, user.retry_after, user.locked = 0, None, False
        user.sessions_since = _now()
        record_event(session, actor, "user.password", user=user.name)


def unlock_user(inst: Installation, name: str, actor: str = "cli") -> None:
    """Lift a lock (and any slow-down) after too many failed logins."""
    with inst.db.session() as session:
        user = _find_user(session, name)
        if user is None:
            raise NotFoundError(f"no user '{name}' (see: rpacs user list)")
        user.failed_logins, user.retry_after, user.locked = 0, None, False
        record_event(session, actor, "user.unlock", user=user.name)


def list_users(inst: Installation) -> list[UserSummary]:
    """Every user by name, with their projects and roles."""
    with inst.db.session() as session:
        users = session.scalars(select(User).order_by(func.lower(User.name))).all()
        roles: dict[int, dict[str, str]] = {}
        for user_id, acronym, role in session.execute(
                select(Membership.user_id, Project.acronym, Membership.role)
                .join(Project, Project.id == Membership.project_id)
                .order_by(Project.acronym)):
            roles.setdefault(user_id, {})[acronym] = role
        return [UserSummary(name=u.name, is_admin=u.is_admin, locked=u.locked,
                            failed_logins=u.failed_logins, created_at=u.created_at,
                            projects=roles.get(u.id, {})) for u in users]


# --- logging in -------------------------------------------------------------------------


def authenticate(inst: Installation, name: str, password: str) -> Principal:
    """The user ``name`` if ``password`` is theirs; AuthenticationError otherwise.

    Every outcome is audited. The refusal does not say whether the name or the password was
    wrong; the user name typed is recorded only when it exists (a password typed into the
    name field must not end up in the log).
    """
    now = _now()
    refusal: str | None = None
    with inst.db.session() as session:
        user = _find_user(session, name)
        if user is None:
            _verify(_DUMMY_HASH, password)
            record_event(session, "-", "login.failed", reason="unknown user")
            refusal = "wrong user name or password"
        elif user.locked:
            record_event(session, user.name, "login.refused", reason="locked")
            refusal = ("this account is locked after too many failed logins; an administrator "
                       "can unlock it (rpacs user unlock NAME)")
        elif (wait := _aware(user.retry_after)) is not None and wait > now:
            record_event(session, user.name, "login.refused", reason="slowed down")
            seconds = max(1, round((wait - now).total_seconds()))
            refusal = f"too many failed logins: try again in {seconds} s"
        elif not _verify(user.password_hash, password):
            user.failed_logins += 1
            if user.failed_logins >= inst.settings.login_lock_failures:
                user.locked = True
            elif user.failed_logins >= SLOW_DOWN_AFTER:
                delay = dt.timedelta(seconds=2 ** (user.failed_logins - SLOW_DOWN_AFTER))
                user.retry_after = now + min(delay, LONGEST_WAIT)
            record_event(session, user.name, "login.failed", reason="wrong password",
                         failures=user.failed_logins, locked=user.locked)
            refusal = "wrong user name or password"
        else:
            if _hasher.check_needs_rehash(user.password_hash):
                user.password_hash = _hasher.hash(password)
            user.failed_logins, user.retry_after = 0, None
            record_event(session, user.name, "login")
            principal = Principal(user_id=user.id, name=user.name, is_admin=user.is_admin)
    # Raised after the transaction, so the failure count and its audit event are kept.
    if refusal is not None:
        raise AuthenticationError(refusal)
    return principal


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        return False


def principal_for_user(inst: Installation, user_id: int, logged_in_at: float) -> Principal:
    """The principal of a web session begun at ``logged_in_at`` (a Unix time).

    Refused when the user is gone or locked, or logged out (or changed their password)
    after the session began: a signed cookie cannot be taken back, so the user row says
    from when on sessions count.
    """
    with inst.db.session() as session:
        user = session.get(User, user_id)
        since = _aware(user.sessions_since) if user else None
        if (user is None or user.locked
                or (since is not None and logged_in_at < since.timestamp())):
            raise AuthenticationError("your session has ended: log in again")
        return Principal(user_id=user.id, name=user.name, is_admin=user.is_admin)


def end_sessions(inst: Installation, principal: Principal) -> None:
    """Log a user out of every web session they have (the logout button does this)."""
    with inst.db.session() as session:
        user = session.get(User, principal.user_id)
        if user is not None:
            user.sessions_since = _now()
            record_event(session, user.name, "logout")


# --- API tokens -------------------------------------------------------------------------


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(inst: Installation, name: str, actor: str = "cli") -> str:
    """A new API token for user ``name``. It is returned once and never stored in clear."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with inst.db.session() as session:
        user = _find_user(session, name)
        if user is None:
            raise NotFoundError(f"no user '{name}' (see: rpacs user list)")
        session.add(ApiToken(user_id=user.id, token_sha256=_token_digest(token),
                             prefix=token[:12]))
        record_event(session, actor, "token.create", user=user.name, prefix=token[:12])
    return token


def principal_for_token(inst: Installation, token: str) -> Principal:
    """The owner of an API token; AuthenticationError for an unknown token or locked user."""
    now = _now()
    with inst.db.session() as session:
        found = session.execute(
            select(ApiToken, User).join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_sha256 == _token_digest(token or ""))).first()
        if found is None or found[1].locked:
            raise AuthenticationError(
                "the API token is not valid (create one with: rpacs token create NAME)")
        api_token, user = found
        last = _aware(api_token.last_used_at)
        if last is None or now - last > dt.timedelta(minutes=5):  # not a write per request
            api_token.last_used_at = now
        return Principal(user_id=user.id, name=user.name, is_admin=user.is_admin)


# --- membership and authorization -------------------------------------------------------


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidInputError(
            f"--role: '{value}' is not one of {', '.join(r.value for r in Role)}") from None


def add_member(inst: Installation, acronym: str, name: str, role: str,
               actor: str = "cli") -> None:
    """Give user ``name`` a role in a project (changing the role they had, if any)."""
    new_role = _role(role)
    with inst.db.session() as session:
        project = _project(session, acronym)
        if project is None:
            raise NotFoundError(f"no project '{acronym}' (see: rpacs project list)")
        user = _find_user(session, name)
        if user is None:
            raise NotFoundError(f"no user '{name}' (see: rpacs user list)")
        membership = session.get(Membership, (project.id, user.id))
        previous = membership.role if membership else None
        if membership is None:
            session.add(Membership(project_id=project.id, user_id=user.id, role=new_role.value))
        else:
            membership.role = new_role.value
        record_event(session, actor, "member.add", project.id, 1, user=user.name,
                     role=new_role.value, previous=previous)


def remove_member(inst: Installation, acronym: str, name: str, actor: str = "cli") -> None:
    """Take user ``name`` out of a project; NotFoundError if they were not in it."""
    with inst.db.session() as session:
        project = _project(session, acronym)
        if project is None:
            raise NotFoundError(f"no project '{acronym}' (see: rpacs project list)")
        user = _find_user(session, name)
        membership = session.get(Membership, (project.id, user.id)) if user else None
        if user is None or membership is None:
            raise NotFoundError(f"'{name}' is not a member of {project.acronym}")
        session.delete(membership)
        record_event(session, actor, "member.remove", project.id, 1, user=user.name,
                     role=membership.role)


def project_members(inst: Installation, project: Project) -> list[dict[str, str]]:
    """The members of a project: name and role, by name."""
    with inst.db.session() as session:
        rows = session.execute(
            select(User.name, Membership.role).join(Membership, Membership.user_id == User.id)
            .where(Membership.project_id == project.id).order_by(func.lower(User.name))).all()
    return [{"name": name, "role": role} for name, role in rows]


def visible_projects(inst: Installation, principal: Principal) -> list[ProjectAccess]:
    """The projects a principal belongs to (every project for an admin), by acronym."""
    with inst.db.session() as session:
        stmt = (select(Project, Membership.role)
                .outerjoin(Membership, (Membership.project_id == Project.id)
                           & (Membership.user_id == principal.user_id))
                .order_by(Project.acronym))
        if not principal.is_admin:
            stmt = stmt.where(Membership.user_id == principal.user_id)
        rows = session.execute(stmt).all()
    return [ProjectAccess(principal, project, Role(role) if role else None)
            for project, role in rows]


def authorize(inst: Installation, principal: Principal, acronym: str,
              permission: Permission) -> ProjectAccess:
    """The principal's access to a project if it grants ``permission``.

    A project the principal is not in does not exist for them: NotFoundError, with the same
    message as for a project that does not exist. A member whose role lacks the permission
    gets PermissionDeniedError, which names the role and who can help.
    """
    with inst.db.session() as session:
        row = session.execute(
            select(Project, Membership.role)
            .outerjoin(Membership, (Membership.project_id == Project.id)
                       & (Membership.user_id == principal.user_id))
            .where(func.lower(Project.acronym) == (acronym or "").lower())).first()
    if row is None or (row[1] is None and not principal.is_admin):
        raise NotFoundError(f"no project '{acronym}'")
    access = ProjectAccess(principal, row[0], Role(row[1]) if row[1] else None)
    if not access.allows(permission):
        raise PermissionDeniedError(
            f"your role in {access.project.acronym} ({access.role}) does not allow "
            f"'{permission}'; ask one of the project's owners")
    return access
