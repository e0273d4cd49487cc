"""Entry point: ``rpacs`` and its command groups; every RpacsError becomes a clear message."""

from __future__ import annotations

import gc
import os
from typing import Any

import click

from .. import __version__
from ..errors import ConflictError, InvalidInputError, RpacsError
from ..net.apps import scp_command
from .accounts import member, token, user
from .assign import assign_command
from .context import own_process
from .coupling import coupling
from .demo import demo_command
from .export import export_command, export_job_command
from .ingest import deid_command, import_command
from .participant import participant
from .patient import patient
from .project import project
from .quarantine import quarantine
from .remote import remote
from .review import review_command
from .route import route
from .serve import serve_command


class _RpacsGroup(click.Group):
    """Turns RpacsError into ``error: ...`` lines on stderr and the error's exit code.

    No traceback is shown for these: they are the user's to act on, and their messages were
    written for that (and hold no patient data). Every other exception is a bug and keeps
    its traceback.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (InvalidInputError, ConflictError) as exc:
            for problem in exc.problems:
                click.echo(f"error: {problem}", err=True)
            ctx.exit(exc.exit_code)
        except RpacsError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_RpacsGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
cli.add_command(user)
cli.add_command(member)
cli.add_command(token)
cli.add_command(serve_command)
cli.add_command(participant)
cli.add_command(scp_command)
cli.add_command(quarantine)
cli.add_command(assign_command)
cli.add_command(route)
cli.add_command(coupling)
cli.add_command(remote)
cli.add_command(export_command)
cli.add_command(export_job_command)


def main() -> None:
    # numpy's OpenBLAS starts a thread per core that spins for work a while after each
    # import; rpacs does no linear algebra, and on a small machine those threads take
    # the CPU the workers need. Set before any command imports numpy.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    own_process()
    try:
        cli(prog_name="rpacs")
    finally:
        # Python's exit would first collect every object the command's imports made
        # (SQLAlchemy's, pydicom's: a third of a second) only to free the memory the
        # process gives back anyway. Frozen, they are left alone; files, connections and
        # temporary folders are closed by the commands themselves, not by that collection.
        gc.freeze()


if __name__ == "__main__":
    main()
