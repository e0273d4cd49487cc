"""``rpacs demo``: the whole flow on synthetic data, in the current RPACS_HOME."""

from __future__ import annotations

import click

from .context import installation, print_json


@click.command("demo")
@click.option("--json", "as_json", is_flag=True, help="Print the demo report as JSON.")
@click.option("--serve", "then_serve", is_flag=True,
              help="Then start the web app on the demo's home (see rpacs serve).")
@click.option("--host", default="127.0.0.1", show_default=True, help="With --serve.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535),
              help="With --serve.")
def demo_command(as_json: bool, then_serve: bool, host: str, port: int) -> None:
    """Make a demo project, import a synthetic MR study with planted PHI, and review it.

    It ends with the address of the web app and a login of a demo user who owns the project
    (a new password every run).
    """
    from ..demo import demo_login, run_demo

    with installation() as inst:
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

        serve(host, port, 1)
