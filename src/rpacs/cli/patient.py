"""``rpacs patient locate``: which projects hold data of one original patient."""

from __future__ import annotations

import sys

import click

from ..errors import InvalidInputError
from .context import installation, print_json


@click.group()
def patient() -> None:
    """Questions about original patients, asked without storing their IDs."""


@patient.command("locate")
@click.option("--json", "as_json", is_flag=True)
def locate(as_json: bool) -> None:
    """Read an original PatientID from standard input (never from the command line, which
    ends up in shell history and process lists) and list the projects and studies that hold
    data of that patient. Only the keyed hash of the ID is compared."""
    from ..ingest import patient_key, studies_of_patient

    if sys.stdin.isatty():
        original = click.prompt("Original PatientID", hide_input=True)
    else:
        original = sys.stdin.readline()
    if not original.strip():
        raise InvalidInputError("no PatientID was given on standard input")
    with installation() as inst:
        found = studies_of_patient(inst, patient_key(inst.settings.installation_secret,
                                                     original.strip()))
    by_project: dict[str, int] = {}
    for acronym, _study in found:
        by_project[acronym] = by_project.get(acronym, 0) + 1
    if as_json:
        print_json([{"project": a, "studies": n} for a, n in by_project.items()])
    elif not by_project:
        click.echo("no project holds data of this patient")
    else:
        for acronym, count in by_project.items():
            click.echo(f"{acronym}: {count} stud{'y' if count == 1 else 'ies'}")
