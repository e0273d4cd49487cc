"""``rpacs coupling``: upload coupling lists (AccessionNumber → assignment)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InvalidInputError
from .context import installation


@click.group()
def coupling() -> None:
    """Coupling lists: studies assigned on arrival by their AccessionNumber."""


@coupling.command("upload")
@click.argument("file", type=click.Path(path_type=Path))
def upload(file: Path) -> None:
    """Upload a CSV with the header accession_number,project,participant,event.

    Either every line is stored or none (all problems are listed). Entries expire after
    14 days (the coupling_days setting).
    """
    from ..routing import upload_coupling_list

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InvalidInputError(f"FILE: cannot read {file} ({reason})") from exc
    with installation() as inst:
        count = upload_coupling_list(inst, text, source=file.name)
    click.echo(f"stored {count} coupling entr{'y' if count == 1 else 'ies'}")
