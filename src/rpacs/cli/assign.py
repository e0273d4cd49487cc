"""``rpacs assign``: assign a quarantined study to project, participant and event by hand."""

from __future__ import annotations

import click

from .context import installation


@click.command("assign")
@click.argument("study_uid")
@click.option("--project", "acronym", required=True, help="Project acronym.")
@click.option("--participant", required=True, help="Research ID (the project's pattern).")
@click.option("--event", required=True, help="One of the project's events.")
def assign_command(study_uid: str, acronym: str, participant: str, event: str) -> None:
    """Assign quarantined study STUDY_UID (see rpacs quarantine list) and import it.

    Instances of the study that arrive later follow the same assignment.
    """
    from ..routing import assign_study

    with installation() as inst:
        outcome = assign_study(inst, study_uid, acronym, participant, event, actor="cli")
    if outcome.state == "refused":
        raise click.ClickException(outcome.note)
    click.echo(f"assigned to {acronym}/{participant}/{event}: {outcome.imported} imported, "
               f"{outcome.rejected} not imported")
    if outcome.rejected:
        raise SystemExit(1)
