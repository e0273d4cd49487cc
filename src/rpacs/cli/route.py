"""``rpacs route``: routing rules for trusted senders with pseudonymised PatientIDs."""

from __future__ import annotations

import click

from .context import installation, print_json


@click.group()
def route() -> None:
    """Rules that assign received studies automatically (PatientID as participant)."""


@route.command("add")
@click.option("--project", "acronym", required=True)
@click.option("--event", required=True)
@click.option("--called-ae", default="", help="Only studies sent to this AE title.")
@click.option("--calling-ae", default="", help="Only studies sent by this AE title.")
@click.option("--patient-id-regex", default="", help="Whole PatientID must match.")
@click.option("--patient-name-regex", default="", help="Whole PatientName must match.")
@click.option("--inactive", is_flag=True, help="Add the rule switched off.")
def add(acronym: str, event: str, called_ae: str, calling_ae: str, patient_id_regex: str,
        patient_name_regex: str, inactive: bool) -> None:
    """Add a rule. A matching complete study is assigned with its PatientID as participant;
    a PatientID that does not fit the project's pattern leaves the study for a human."""
    from ..routing import RuleSpec, add_rule

    with installation() as inst:
        rule = add_rule(inst, RuleSpec(acronym, event, called_ae, calling_ae, patient_id_regex,
                                       patient_name_regex, active=not inactive))
    click.echo(f"added rule {rule.id} for {rule.project}")


@route.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_(as_json: bool) -> None:
    """List the rules in the order they are tried."""
    from ..routing import list_rules

    with installation() as inst:
        rules = list_rules(inst)
    if as_json:
        print_json([r.as_dict() for r in rules])
        return
    if not rules:
        click.echo("no routing rules")
    for r in rules:
        criteria = ", ".join(f"{k}={v}" for k, v in (
            ("called", r.called_ae), ("calling", r.calling_ae), ("id", r.patient_id_regex),
            ("name", r.patient_name_regex)) if v) or "every study"
        click.echo(f"{r.id:>4} {'active' if r.active else 'inactive':<8} "
                   f"{r.project}/{r.event}: {criteria}")


@route.command("remove")
@click.argument("rule_id", type=int)
def remove(rule_id: int) -> None:
    """Remove rule RULE_ID."""
    from ..routing import remove_rule

    with installation() as inst:
        remove_rule(inst, rule_id)
    click.echo(f"removed rule {rule_id}")
