"""``rpacs review`` (the tag inventory of a project) and ``rpacs demo``."""

from __future__ import annotations

import click

from ..review import review_project
from .context import installation, print_json


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@click.command("review")
@click.argument("acronym")
@click.option("--json", "as_json", is_flag=True, help="Print the inventory as JSON.")
@click.option("--flagged", is_flag=True, help="Only tags with a value that looks identifying.")
@click.option("--top", default=3, show_default=True, help="Most frequent values shown per tag.")
def review_command(acronym: str, as_json: bool, flagged: bool, top: int) -> None:
    """Every tag present in a project's data, with counts, values and flags."""
    with installation() as inst:
        reviews = review_project(inst, acronym, top=top)
    if flagged:
        reviews = [r for r in reviews if r.flags]
    if as_json:
        print_json([r.as_dict() for r in reviews])
        return
    click.echo(f"{'TAG':<28} {'KEYWORD':<44} {'VR':<2} {'INST':>6} {'DIST':>6}  VALUES / FLAGS")
    for r in reviews:
        values = "; ".join(f"{_short(v, 30)!r}×{n}" for v, n in r.top_values if v)
        flag = f"  !! {', '.join(r.flags)}" if r.flags else ""
        click.echo(f"{_short(r.tag, 28):<28} {_short(r.keyword_path, 44):<44} {r.vr:<2} "
                   f"{r.n_instances:>6} {r.n_distinct:>6}  {values}{flag}")
    n_flagged = sum(1 for r in reviews if r.flags)
    click.echo(f"{len(reviews)} tag paths, {n_flagged} flagged")


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
