"""``rpacs user``, ``rpacs member`` and ``rpacs token``: who may use the web app and API."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InvalidInputError
from .context import installation, print_json


def _read_password(password_file: Path | None) -> str:
    """The first line of ``password_file``, or asked twice on the terminal (never echoed)."""
    if password_file is None:
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        lines = password_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"--password-file: cannot read {password_file} ({exc})") from exc
    if not lines or not lines[0]:
        raise InvalidInputError(f"--password-file: {password_file} has no password on its "
                                "first line")
    return lines[0]


@click.group("user")
def user() -> None:
    """Users of the web app and the API."""


@user.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="May do everything in every project.")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Read the password from the first line of this file instead of asking.")
def user_add(name: str, admin: bool, password_file: Path | None) -> None:
    """Create user NAME (the password is asked twice unless --password-file is given)."""
    from ..accounts import add_user

    password = _read_password(password_file)
    with installation() as inst:
        add_user(inst, name, password, is_admin=admin)
    click.echo(f"user {name} created" + (" (admin)" if admin else ""))


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def user_list(as_json: bool) -> None:
    """Every user with their projects and roles."""
    from ..accounts import list_users

    with installation() as inst:
        users = list_users(inst)
    if as_json:
        print_json([{"name": u.name, "admin": u.is_admin, "locked": u.locked,
                     "projects": u.projects} for u in users])
        return
    if not users:
        click.echo("no users yet (add one: rpacs user add NAME)")
    for u in users:
        roles = ", ".join(f"{p} ({r})" for p, r in u.projects.items()) or "no projects"
        marks = "".join([" [admin]" if u.is_admin else "", " [locked]" if u.locked else ""])
        click.echo(f"{u.name}{marks}: {roles}")


@user.command("unlock")
@click.argument("name")
def user_unlock(name: str) -> None:
    """Unlock NAME after too many failed logins."""
    from ..accounts import unlock_user

    with installation() as inst:
        unlock_user(inst, name)
    click.echo(f"user {name} unlocked")


@user.command("password")
@click.argument("name")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Read the password from the first line of this file instead of asking.")
def user_password(name: str, password_file: Path | None) -> None:
    """Set a new password for NAME (and unlock the account)."""
    from ..accounts import set_password

    password = _read_password(password_file)
    with installation() as inst:
        set_password(inst, name, password)
    click.echo(f"password of {name} changed")


@click.group("member")
def member() -> None:
    """Who is in a project, and with which role."""


@member.command("add")
@click.argument("project")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["owner", "data-manager", "member"]),
              help="owner: members, settings, exports, audit log; data-manager: review, "
                   "export, download; member: view and review.")
def member_add(project: str, name: str, role: str) -> None:
    """Give user NAME a ROLE in PROJECT (or change the role they have)."""
    from ..accounts import add_member

    with installation() as inst:
        add_member(inst, project, name, role)
    click.echo(f"{name} is {role} of {project}")


@member.command("remove")
@click.argument("project")
@click.argument("name")
def member_remove(project: str, name: str) -> None:
    """Take user NAME out of PROJECT."""
    from ..accounts import remove_member

    with installation() as inst:
        remove_member(inst, project, name)
    click.echo(f"{name} removed from {project}")


@member.command("list")
@click.argument("project")
def member_list(project: str) -> None:
    """The members of PROJECT and their roles."""
    from ..accounts import project_members
    from ..projects import get_project

    with installation() as inst:
        members = project_members(inst, get_project(inst, project))
    for m in members:
        click.echo(f"{m['name']}: {m['role']}")
    if not members:
        click.echo(f"{project} has no members yet")


@click.group("token")
def token() -> None:
    """API tokens (``Authorization: Bearer TOKEN``) for scripts."""


@token.command("create")
@click.argument("name")
def token_create(name: str) -> None:
    """Print a new API token for user NAME. It is shown this once: keep it safe."""
    from ..accounts import create_token

    with installation() as inst:
        value = create_token(inst, name)
    click.echo(value)
