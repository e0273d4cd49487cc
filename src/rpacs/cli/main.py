"""Entry point: ``rpacs`` and its command groups; every RpacsError becomes a clear message."""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import InvalidInputError, RpacsError
from .ingest import deid_command, import_command
from .patient import patient
from .project import project
from .review import demo_command, review_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rpacs")
def cli() -> None:
    """rpacs: a research PACS with project-scoped, de-identified DICOM storage.

    Data lives in RPACS_HOME (default ~/.rpacs); the index database is RPACS_DATABASE_URL
    (default a SQLite file in RPACS_HOME).
    """


cli.add_command(project)
cli.add_command(import_command)
cli.add_command(deid_command)
cli.add_command(review_command)
cli.add_command(demo_command)
cli.add_command(patient)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="rpacs", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except InvalidInputError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(exc.exit_code)
    except RpacsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted; rerun the same command to complete the work", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
