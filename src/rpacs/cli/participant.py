"""``rpacs participant withdraw``: a participant leaves a project."""

from __future__ import annotations

import click

from .context import installation


@click.group()
def participant() -> None:
    """Participants of a project."""


@participant.command("withdraw")
@click.argument("acronym")
@click.argument("research_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def withdraw(acronym: str, research_id: str, yes: bool) -> None:
    """Delete all studies of RESEARCH_ID from ACRONYM's archive and refuse later studies of
    the same original patient (recorded and audited). Running it again completes an
    interrupted withdrawal."""
    from ..routing import withdraw_participant

    if not yes:
        click.confirm(f"Delete every study of {research_id} from {acronym}?", abort=True)
    with installation() as inst:
        summary = withdraw_participant(inst, acronym, research_id)
    if summary.refused_patients:
        refusal = "later studies of the same patient will be refused"
    elif summary.already_withdrawn:
        refusal = "withdrawn before: the refusals recorded then stand"
    else:
        refusal = "no original patient is known (nothing was stored), so none can be refused"
    click.echo(f"withdrew {research_id} from {acronym}: {summary.studies} studies "
               f"({summary.instances} instances) deleted; {refusal}")
