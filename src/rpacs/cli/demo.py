"""``rpacs demo``: the whole flow on synthetic data, in the current RPACS_HOME."""

from __future__ import annotations

import click

from .context import installation, print_json


@click.command("demo")
@click.option("--json", "as_json", is_flag=True, help="Print the demo report as JSON.")
def demo_command(as_json: bool) -> None:
    """Make a demo project, import a synthetic MR study with planted PHI, and review it."""
    from ..demo import run_demo

    with installation() as inst:
        report = run_demo(inst)
    if as_json:
        print_json(report.as_dict())
    else:
        click.echo(report.render())
    if not report.clean:  # a planted value survived or was flagged: make it fail loudly
        raise SystemExit(1)
