"""``rpacs project``: create, list, show projects and their de-identification profile."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InvalidInputError
from .context import installation, print_json, shorten


@click.group()
def project() -> None:
    """Create and inspect projects."""


def _read_text(path: Path, option: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InvalidInputError(f"{option}: cannot read {path} ({reason})") from exc


@project.command("create")
@click.argument("acronym")
@click.option("--rek", required=True, help="Ethics approval (REK) number.")
@click.option("--pi-name", required=True, help="Principal investigator's name.")
@click.option("--pi-email", required=True, help="Principal investigator's e-mail.")
@click.option("--start", "start", required=True, help="Ethics start date, YYYY-MM-DD.")
@click.option("--end", "end", required=True, help="Ethics end date, YYYY-MM-DD.")
@click.option("--participant-pattern", required=True,
              help=r"Regular expression every whole participant ID must match, e.g. BICAM-\d{4}.")
@click.option("--events", default="Event01", show_default=True,
              help="Comma-separated event names, e.g. baseline,followup.")
@click.option("--end-action", default="anonymize", show_default=True,
              help="What happens at the ethics end date: delete or anonymize.")
@click.option("--date-shift", default="per-project", show_default=True,
              help="One date offset for the project (per-project) or one per participant.")
@click.option("--deid-profile", "profile_file", type=click.Path(path_type=Path),
              help="YAML de-identification profile (default: the rpacs default profile).")
@click.option("--json", "as_json", is_flag=True, help="Print the new project as JSON.")
def create(acronym: str, rek: str, pi_name: str, pi_email: str, start: str, end: str,
           participant_pattern: str, events: str, end_action: str, date_shift: str,
           profile_file: Path | None, as_json: bool) -> None:
    """Create project ACRONYM (5-20 letters, digits, '-' or '_'; unique in any case).

    Every problem with the values is reported at once (exit code 2). The project gets a
    random 256-bit secret that keys its UIDs and date shifts; it is never shown.
    """
    from ..projects import ProjectSpec, create_project, project_summary

    # --end-action and --date-shift are checked by the spec, not by click.Choice, so that a
    # wrong one is reported together with every other problem, in the same form.
    spec = ProjectSpec(
        acronym=acronym, rek=rek, pi_name=pi_name, pi_email=pi_email, start_date=start,
        end_date=end, participant_pattern=participant_pattern,
        events=events.split(","), end_action=end_action, date_shift=date_shift,
        deid_profile=_read_text(profile_file, "--deid-profile") if profile_file else None,
    )
    with installation() as inst:
        created = create_project(inst, spec)
        if as_json:
            print_json(project_summary(inst, created))
        else:
            click.echo(f"created project {created.acronym} (events: "
                       f"{', '.join(created.events)})")


@project.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the projects as JSON.")
def list_(as_json: bool) -> None:
    """List projects with their counts."""
    from ..projects import list_projects, project_summary

    with installation() as inst:
        summaries = [project_summary(inst, p) for p in list_projects(inst)]
    if as_json:
        print_json(summaries)
        return
    if not summaries:
        click.echo("no projects yet (rpacs project create --help)")
        return
    click.echo(f"{'ACRONYM':<20} {'STATE':<9} {'END':<10} {'PARTIC.':>7} {'STUDIES':>7} "
               f"{'INSTANCES':>9}  PI")
    for s in summaries:
        click.echo(f"{s['acronym']:<20} {s['state']:<9} {s['end_date']:<10} "
                   f"{s['participants']:>7} {s['studies']:>7} {s['instances']:>9}  "
                   f"{shorten(s['pi_name'], 30)}")


@project.command("show")
@click.argument("acronym")
@click.option("--json", "as_json", is_flag=True, help="Print the project as JSON.")
def show(acronym: str, as_json: bool) -> None:
    """Show one project with its counts (never its secret)."""
    from ..projects import get_project, project_summary

    with installation() as inst:
        summary = project_summary(inst, get_project(inst, acronym))
    if as_json:
        print_json(summary)
        return
    for key, value in summary.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        click.echo(f"{key.replace('_', ' '):<22} {shown}")


@project.command("set-profile")
@click.argument("acronym")
@click.argument("profile_file", type=click.Path(path_type=Path))
def set_profile(acronym: str, profile_file: Path) -> None:
    """Give ACRONYM its own de-identification profile (YAML) for future imports.

    Files already stored are not changed. See docs/deid-profile.md for the format.
    """
    from ..projects import set_deid_profile

    text = _read_text(profile_file, "PROFILE_FILE")
    with installation() as inst:
        set_deid_profile(inst, acronym, text)
    click.echo(f"profile of {acronym} updated; it applies to imports from now on")


@project.command("profile")
@click.argument("acronym")
def profile(acronym: str) -> None:
    """Print the effective de-identification profile of ACRONYM as YAML."""
    from ..projects import deid_profile, get_project

    with installation() as inst:
        click.echo(deid_profile(get_project(inst, acronym)).to_yaml(), nl=False)


@project.command("auto-id")
@click.argument("acronym")
@click.option("--ae-title", help="AE title senders use for this project's studies.")
@click.option("--event", help="Event of auto-assigned studies [default: the first one].")
@click.option("--off", is_flag=True, help="Switch auto-ID off.")
def auto_id(acronym: str, ae_title: str | None, event: str | None, off: bool) -> None:
    """Auto-ID: studies sent to AE title X get a random participant ID from the project's
    pattern, the same one for every study of the same original patient.

    The pattern must be made of literal text, \\d, classes like [A-Z0-9] and fixed repeats
    like {4} (e.g. BICAM-\\d{4}); see docs/operations.md.
    """
    from ..routing import set_auto_id

    if not off and not ae_title:
        raise InvalidInputError("--ae-title: required to switch auto-ID on")
    with installation() as inst:
        set_auto_id(inst, acronym, ae_title, event, enabled=not off)
    click.echo(f"auto-ID of {acronym} is {'off' if off else 'on for AE title ' + str(ae_title)}")
