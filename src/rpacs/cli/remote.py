"""``rpacs remote``: DICOM nodes allowed to query and retrieve a project's data."""

from __future__ import annotations

import click

from .context import installation, print_json


@click.group()
def remote() -> None:
    """Remote AEs per project: a remote sees only the projects it is registered for."""


@remote.command("add")
@click.argument("acronym")
@click.argument("ae_title")
@click.argument("host")
@click.argument("port", type=int)
def add(acronym: str, ae_title: str, host: str, port: int) -> None:
    """Register AE_TITLE at HOST:PORT for project ACRONYM."""
    from ..net import add_remote

    with installation() as inst:
        r = add_remote(inst, acronym, ae_title, host, port)
    click.echo(f"{r.ae_title} ({r.host}:{r.port}) may now query and retrieve {r.project}")


@remote.command("list")
@click.argument("acronym", required=False)
@click.option("--json", "as_json", is_flag=True)
def list_(acronym: str | None, as_json: bool) -> None:
    """List registered remote AEs (of one project, or of all)."""
    from ..net import list_remotes

    with installation() as inst:
        remotes = list_remotes(inst, acronym)
    if as_json:
        print_json([r.as_dict() for r in remotes])
        return
    if not remotes:
        click.echo("no remote AEs registered")
    for r in remotes:
        click.echo(f"{r.project:<20} {r.ae_title:<16} {r.host}:{r.port}")


@remote.command("remove")
@click.argument("acronym")
@click.argument("ae_title")
def remove(acronym: str, ae_title: str) -> None:
    """Remove AE_TITLE's registration for ACRONYM."""
    from ..net import remove_remote

    with installation() as inst:
        remove_remote(inst, acronym, ae_title)
    click.echo(f"removed {ae_title.strip()} from {acronym}")
