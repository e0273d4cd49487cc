"""``rpacs demo``: the whole flow on synthetic data, in a home of its own."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from .context import installation, load_settings, print_json

#: The demo's home when neither --home nor RPACS_HOME names one (as ``make demo``'s).
DEMO_HOME = Path("demo-home")


@click.command("demo")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path),
              help="The demo's home (default: RPACS_HOME when set, else ./demo-home).")
@click.option("--json", "as_json", is_flag=True, help="Print the demo report as JSON.")
@click.option("--serve", "then_serve", is_flag=True,
              help="Then start the web app on the demo's home (see rpacs serve).")
@click.option("--host", default="127.0.0.1", show_default=True, help="With --serve.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535),
              help="With --serve.")
def demo_command(home: Path | None, as_json: bool, then_serve: bool, host: str,
                 port: int) -> None:
    """Make a demo project, import a synthetic MR study with planted PHI, and review it.

    It ends with the address of the web app and a login of a demo user who owns the project
    (a new password every run). It never runs in an index that holds other projects.
    """
    from ..demo import demo_login, run_demo

    settings = load_settings()
    if home is not None or settings.home_is_default:
        # Not the default home, which is where a real archive lives.
        settings = dataclasses.replace(settings, home=(home or DEMO_HOME).resolve())
    with installation(settings) as inst:
        report = run_demo(inst)
        user, password = demo_login(inst)
    url = f"http://{host}:{port}/"
    if as_json:
        print_json({**report.as_dict(), "web": {"url": url, "user": user,
                                                 "password": password}})
    else:
        click.echo(report.render())
        # The same home and script as the review command the report shows.
        serve_command = report.review_command.rsplit(" review ", 1)[0] + " serve"
        click.echo(f"  web:      {url}  " + ("(starting now)" if then_serve else
                                             f"(start it with: {serve_command})"))
        click.echo(f"            log in as {user} / {password}")
    if not report.clean:  # a planted value survived or was flagged: make it fail loudly
        raise SystemExit(1)
    if then_serve:
        from .serve import serve

        serve(host, port, 1, settings=settings)
