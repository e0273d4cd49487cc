"""``rpacs review``: the tag inventory of a project, with what looks identifying flagged."""

from __future__ import annotations

import re

import click

from .context import installation, print_json, shorten

_CREATOR = re.compile(r"@[^>]*")


@click.command("review")
@click.argument("acronym")
@click.option("--json", "as_json", is_flag=True, help="Print the inventory as JSON.")
@click.option("--flagged", is_flag=True, help="Only tags with a value that looks identifying.")
@click.option("--top", type=click.IntRange(min=0), default=3, show_default=True,
              help="Most frequent values shown per tag.")
def review_command(acronym: str, as_json: bool, flagged: bool, top: int) -> None:
    """Every tag present in the data of project ACRONYM (inside sequences too, as a path):
    its keyword, VR, number of instances, number of distinct values, most frequent values
    and, marked with !!, why a value looks identifying. Reads the index, not the files."""
    from ..review import review_project

    with installation() as inst:
        reviews = review_project(inst, acronym, top=top)
    total, n_flagged = len(reviews), sum(1 for r in reviews if r.flags)
    if flagged:
        reviews = [r for r in reviews if r.flags]
    if as_json:
        print_json([r.as_dict() for r in reviews])
        return
    click.echo(f"{'TAG':<24} {'KEYWORD':<40} {'VR':<2} {'INST':>7} {'DIST':>7}  "
               "VALUES (×instances)  !! FLAGS")
    for r in reviews:
        values = "; ".join(f"{shorten(v, 24)!r}×{n}" for v, n in r.top_values if v)
        if r.n_distinct > len(r.top_values) and values:
            values += "; …"
        flag = f"  !! {', '.join(r.flags)}" if r.flags else ""
        tag = _CREATOR.sub("", r.tag)  # the keyword column names the private creator
        click.echo(f"{shorten(tag, 24, keep_end=True):<24} "
                   f"{shorten(r.keyword_path, 40, keep_end=True):<40} {r.vr:<2} "
                   f"{r.n_instances:>7} {r.n_distinct:>7}  {values}{flag}")
    click.echo(f"{total} tag paths, {n_flagged} flagged")
