"""``rpacs quarantine``: the studies received over DICOM, and their retention."""

from __future__ import annotations

import click

from .context import installation, print_json, shorten


@click.group()
def quarantine() -> None:
    """Studies received over DICOM, waiting for (or past) their assignment."""


@quarantine.command("list")
@click.option("--state", "states", multiple=True,
              type=click.Choice(["receiving", "complete", "assigned", "refused"]),
              help="Only studies in this state (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the studies as JSON.")
def list_(states: tuple[str, ...], as_json: bool) -> None:
    """List quarantined studies: date, modality, description, series and images, accession
    number and calling AE — never the patient's name or ID."""
    from ..quarantine import Quarantine

    with installation() as inst:
        entries = Quarantine(inst).entries(states or None)
    if as_json:
        print_json([e.as_dict() for e in entries])
        return
    if not entries:
        click.echo("the quarantine is empty")
        return
    click.echo(f"{'STATE':<9} {'DATE':<8} {'MOD':<6} {'DESCRIPTION':<24} {'SER':>3} "
               f"{'IMG':>5} {'ACCESSION':<16} {'CALLING':<16} {'ASSIGNED / NOTE':<30} "
               "STUDY UID")
    for e in entries:
        where = (f"{e.project}/{e.participant}/{e.event} ({e.assigned_by})"
                 if e.project else e.note)
        click.echo(f"{e.state:<9} {e.study_date:<8} {shorten(e.modalities, 6):<6} "
                   f"{shorten(e.description, 24):<24} {e.series:>3} {e.images:>5} "
                   f"{e.accession_number:<16} {e.calling_ae:<16} {shorten(where, 30):<30} "
                   f"{e.study_uid}")


@quarantine.command("purge")
@click.option("--days", type=click.FloatRange(min=0), default=None,
              help="Retention in days [default: the quarantine_days setting, 7].")
def purge(days: float | None) -> None:
    """Delete studies whose last instance arrived longer ago than the retention period."""
    from ..quarantine import Quarantine

    with installation() as inst:
        summary = Quarantine(inst).purge(days=days)
    click.echo(f"purged {summary.studies} stud{'y' if summary.studies == 1 else 'ies'} "
               f"({summary.files} files) and {summary.orphan_folders} unrecorded folder(s)")
