"""``rpacs import`` and ``rpacs deid``: de-identify DICOM files into the archive or a folder.

Both start their worker processes before anything else is loaded (the settings first only
when they give the worker count, without ``--workers``): the workers import the
de-identification side while this process imports SQLAlchemy, opens the
index and looks up the project. The services are therefore imported inside the commands,
after the pool has started.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from .context import installation, load_settings, print_json, progress_bar

#: Skipped (not DICOM) files named one by one in the summary; --json names all.
SKIPPED_SHOWN = 10

if TYPE_CHECKING:
    from ..ingest import ImportSummary
    from ..ingest.pool import WorkerPool
    from ..settings import Settings


def _worker_pool(workers: int | None) -> tuple[WorkerPool, Settings | None]:
    """The command's worker pool (started by ``with``) and the settings if they were loaded
    for its size: with ``--workers`` they are not, and load with the index instead, while
    the workers start."""
    from ..ingest.pool import WorkerPool

    if workers:
        return WorkerPool(workers), None
    settings = load_settings()
    return WorkerPool(settings.worker_count), settings


def _report(summary: ImportSummary, as_json: bool, stored_label: str) -> None:
    """The counts on stdout, one line per rejected file on stderr; exit 1 on any rejection."""
    if as_json:
        print_json(summary.as_dict())
    else:
        click.echo(
            f"{stored_label}: {summary.stored}, already present: {summary.present}, "
            f"skipped (not DICOM): {summary.not_dicom}, rejected: {len(summary.rejected)} "
            f"({summary.studies} studies, {summary.series} series)"
        )
        for rejection in summary.rejected:
            click.echo(f"rejected {rejection.source}: {rejection.reason}", err=True)
        # A clinical CD carries a viewer of hundreds of files: the first few say enough.
        for skipped in summary.skipped[:SKIPPED_SHOWN]:
            click.echo(f"skipped {skipped.source}: {skipped.reason}", err=True)
        if len(summary.skipped) > SKIPPED_SHOWN:
            click.echo(f"skipped {len(summary.skipped) - SKIPPED_SHOWN} more file(s) that are "
                       "not DICOM (--json lists them all)", err=True)
    if not summary.ok:
        raise SystemExit(1)


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--project", "acronym", required=True, help="Project acronym.")
@click.option("--participant", required=True, help="Research participant ID.")
@click.option("--event", required=True, help="One of the project's events.")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes (default: cores).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def import_command(paths: tuple[Path, ...], acronym: str, participant: str, event: str,
                   workers: int | None, as_json: bool) -> None:
    """De-identify files, folders (recursively) and zip files into a project's archive.

    Exit code 0 when nothing was rejected, 1 otherwise; rerunning an interrupted import
    completes it, and re-importing the same files changes nothing.
    """
    pool, settings = _worker_pool(workers)
    with pool, installation(settings) as inst, progress_bar("import") as progress:
        from ..ingest import import_paths

        summary = import_paths(inst, acronym, participant, event, list(paths),
                               progress=progress, pool=pool)
    _report(summary, as_json, "stored")


@click.command("deid")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.argument("dst", type=click.Path(file_okay=False, path_type=Path))
@click.option("--project", "acronym", required=True, help="Project whose profile and keys apply.")
@click.option("--participant", required=True, help="Research participant ID.")
@click.option("--event", help="Event name (default: the project's first event).")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes (default: cores).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def deid_command(src: Path, dst: Path, acronym: str, participant: str, event: str | None,
                 workers: int | None, as_json: bool) -> None:
    """De-identify SRC into DST as the import would, without storing anything in the archive.

    Files are written as DST/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm
    with the project's new UIDs, so no original file name is carried over. Exit code 0
    when nothing was rejected, 1 otherwise.
    """
    pool, settings = _worker_pool(workers)
    with pool, installation(settings) as inst, progress_bar("deid") as progress:
        from ..ingest import deidentify_tree

        summary = deidentify_tree(inst, acronym, participant, event, src, dst,
                                  progress=progress, pool=pool)
    _report(summary, as_json, "written")
