"""``rpacs export``: a project's data as a package shaped by an export spec."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from .context import installation, print_json, progress_bar, shorten, start_up_done

if TYPE_CHECKING:
    from ..export import ExportPlan, ExportResult, RiskReport


def _print_plan(plan: ExportPlan, risk: RiskReport) -> None:
    click.echo(f"export {plan.spec_name} of {plan.project} -> {plan.output} (dry run: "
               "nothing written)")
    click.echo(f"  {len(plan.participants)} participant(s), {len(plan.series)} series, "
               f"{plan.n_instances} instance(s)")
    click.echo("  participant        event          modality  series  instances")
    for participant, event, modality, series, instances in plan.counts():
        click.echo(f"  {participant:<18} {event:<14} {modality:<9} {series:>6}  {instances:>9}")
    if plan.fresh_every_run:
        click.echo("  (no coupling list: the IDs and UIDs shown are examples, every run draws "
                   "new ones)")
    click.echo("  first paths:" if not plan.file_set else
               "  first paths, in the layout (a DICOMDIR file-set then names the files "
               "PT000000/ST000000/SE000000/IM000000 and on, in this order):")
    for path in plan.first_paths():
        click.echo(f"    {path}")
    for series in plan.series:
        changes = plan.changes.get(series.key, [])
        click.echo(f"  changes in one instance of {series.participant} {series.event} "
                   f"{series.modality} series {series.series_number} "
                   f"({series.series_description}):")
        for change in changes:
            click.echo(f"    {change.tag}: {shorten(change.before, 40)!r} -> "
                       f"{shorten(change.after, 60)!r}")
        if not changes:
            click.echo("    none: the files are exported as stored")
    click.echo(risk.render())


def _print_result(result: ExportResult) -> None:
    click.echo(f"exported {result.instances} instance(s) of {result.participants} "
               f"participant(s), {result.series} series: {result.files} file(s) in "
               f"{result.package}" + (f" (resumed after {result.resumed} series)"
                                      if result.resumed else ""))
    if result.coupling_list:
        click.echo(f"  coupling list: {result.coupling_list} (readable only by you)")
    click.echo(f"  risk report:   {result.risk_report}")
    for failure in result.nifti_failed:
        click.echo(f"  NIfTI not made for {failure}", err=True)
    for finding in result.findings:
        click.echo(f"  finding (allowed): {finding.file} {finding.tag}: {finding.reason} "
                   f"({finding.masked})", err=True)


@click.command("export")
@click.argument("project")
@click.option("--spec", "spec_ref", required=True,
              help="Export spec: a YAML file, or study:<StudyInstanceUID>, research-package, "
                   "anonymized-package, nifti.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder the package (and beside it the risk report) is written to.")
@click.option("--sidecar", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV of added columns; the first column is the research participant ID.")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes (default: cores).")
@click.option("--dry-run", is_flag=True, help="Print the plan and risk report; write nothing.")
@click.option("--k", "k", type=click.IntRange(min=2), default=5, show_default=True,
              help="k of the k-anonymity risk report.")
@click.option("--allow-findings", is_flag=True,
              help="Keep the package even when the residual-PHI scan finds something.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def export_command(project: str, spec_ref: str, out: Path, sidecar: Path | None,
                   workers: int | None, dry_run: bool, k: int, allow_findings: bool,
                   as_json: bool) -> None:
    """Export PROJECT's data as the spec says: DICOM and/or NIfTI, folder or zips.

    The package appears in OUT only when complete; a killed export resumes when rerun.
    A residual-PHI finding removes the package and exits 1 (unless --allow-findings).
    """
    from ..export import load_spec, plan_export, run_export
    from ..projects import get_project

    with installation() as inst:
        # Checked against the project's events with the spec's other problems.
        spec = load_spec(spec_ref, get_project(inst, project).events)
        if dry_run:
            plan, risk = plan_export(inst, project, spec, out, sidecar=sidecar, k=k)
            if as_json:
                from dataclasses import asdict

                # Export IDs only: research ID → export ID is the coupling list, which
                # belongs in its owner-only file, not on a terminal or in a log.
                data = asdict(plan)
                data["participants"] = sorted(plan.participants.values())
                for series in data["series"]:
                    series.pop("research_id")
                    series.pop("archive_uids")
                    series.pop("archive_dates")
                    for instance in series["instances"]:
                        instance.pop("stored_path")
                print_json({"plan": {**data, "counts": plan.counts()},
                            "risk": risk.as_dict()})
            else:
                _print_plan(plan, risk)
            return
        with progress_bar("export") as progress:
            result = run_export(inst, project, spec, out, sidecar=sidecar, k=k,
                                workers=workers, allow_findings=allow_findings,
                                progress=progress)
    if as_json:
        print_json(result.as_dict())
    else:
        _print_result(result)
        click.echo("\n".join(f"  {line}" for line in _risk_lines(result.risk)))


def _risk_lines(risk: dict) -> list[str]:
    lines = [f"risk: smallest class {risk['smallest_class']} over "
             f"{', '.join(risk['quasi_identifiers']) or 'nothing'} (k={risk['k']})"]
    if risk["below_k"]:
        lines.append(f"  below k: {', '.join(risk['below_k'])}")
        lines += [f"  with {g['apply']}: "
                  + ("lifts all" if g["lifts_all"] else f"{len(g['still_below_k'])} still below")
                  for g in risk["generalisations"]]
    return lines


@click.command("export-job", hidden=True)
@click.argument("job_id", type=int)
def export_job_command(job_id: int) -> None:
    """Run export job JOB_ID of the web app (started by it; settings as JSON on stdin)."""
    import sys

    from ..export.jobs import run_job
    from ..installation import Installation
    from ..settings import Settings

    settings = Settings.from_json(sys.stdin.read())
    inst = Installation.open(settings)
    start_up_done()
    try:
        state = run_job(inst, job_id)
    finally:
        inst.close()
    click.echo(f"export job {job_id}: {state}")
