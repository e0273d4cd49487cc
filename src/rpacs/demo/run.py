"""``rpacs demo``: a project, a synthetic MR study with planted PHI, its import, review and
export.

The demo proves its claim rather than asserting it: after the import it searches every
byte under RPACS_HOME (stored files, the index database, anything else) for every planted
value, in UTF-8 and Latin-1 and in any letter case; it asks the review whether any tag
still looks identifying; and it checks that the references between images still resolve
after every UID was replaced. It ends with an export for a collaborator under a spec like
issue 3's (:data:`DEMO_SPEC`): new IDs, dates shifted again, DICOM and NIfTI, a zip per
participant, written under the home so that the same byte search covers the package.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import tempfile
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from sqlalchemy import select
from sqlalchemy.engine import make_url

from ..db import Series, Study, TagInventory, TagValue
from ..deid import quiet  # noqa: F401  (pydicom's value warnings off)
from ..errors import InvalidInputError, NotFoundError, ResidualPhiError
from ..export import ExportSpec, beside, run_export
from ..ingest import import_paths
from ..installation import Installation
from ..projects import ProjectSpec, create_project, get_project, list_projects
from ..review import review_project
from .synthetic import SyntheticPatient, write_mr_study

ACRONYM = "DEMO-MR"
PARTICIPANT = "DEMO-0001"
EVENT = "baseline"
SERIES = 3
SLICES = 12
#: The demo's export, shaped like the example spec of the export documentation.
DEMO_SPEC = """\
name: demo-collab
description: T1 and FLAIR of the demo project for a collaborator
select:
  events: [baseline]
  modalities: [MR]
  series_description: "(?i)t1|fluid"
identity: {participant: random, pattern: "DMO{n:04d}", coupling_list: true}
dates: shift
tags:
  - {tag: SeriesDescription, clean: true}
  - {tag: SeriesDescription, replace: {pattern: "_", with: "-"}}
  - {tag: PatientBirthDate, from_sidecar: birth_date}
  - {tag: StationName, remove: true}
  - {tag: "0008,1030", set: "Demo collaboration"}
layout: "{participant}/{event}/{modality}/{series_number:03d}_{series_description}/\\
{instance_number:05d}.dcm"
formats: [dicom, nifti]
package: zip-per-participant
"""


@dataclass
class DemoReport:
    """Where the demo put everything, what the import did and what the checks found."""

    home: str
    database: str
    store: str
    input_folder: str
    files: int
    stored: int
    present: int
    rejected: int
    tag_paths: int
    references: int
    references_resolved: int
    #: The command that shows the project's review, as this user can type it.
    review_command: str
    #: ``path (NO…)`` for each file under the home holding a planted value (hint only).
    planted_found: list[str] = field(default_factory=list)
    #: ``keyword path: reasons`` for each review row flagged as looking identifying.
    flagged: list[str] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)
    #: The export at the end: package, files in it, NIfTI failures, what the scan found.
    export_package: str = ""
    export_files: int = 0
    export_smallest_class: int = 0
    export_problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Nothing planted survived, nothing was flagged or rejected, references resolve."""
        return (not self.planted_found and not self.flagged and not self.rejected
                and self.references_resolved == self.references and not self.export_problems
                and self.export_files > 0)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "clean": self.clean}

    def render(self) -> str:
        lines = [
            f"rpacs demo: project {ACRONYM}, participant {PARTICIPANT}, event {EVENT}",
            "  input:    a synthetic clinical MR study with planted identifying values,",
            f"            written to {self.input_folder} (outside the home), removed after "
            "the import",
            f"  import:   {self.files} files -> stored {self.stored}, already present "
            f"{self.present}, rejected {self.rejected}",
            f"  home:     {self.home}",
            f"  database: {self.database}",
            f"  store:    {self.store}",
            f"  review:   {self.tag_paths} tag paths in the project's inventory; see them with",
            f"            {self.review_command}",
            f"  links:    {self.references_resolved} of {self.references} image references "
            "point at a stored instance under its new UID",
            f"  export:   {self.export_files} files (DICOM, NIfTI, manifest) in "
            f"{self.export_package}",
            "            a zip per participant with new IDs and dates shifted again; the "
            "coupling list",
            f"            and risk report beside it (k-anonymity: smallest class "
            f"{self.export_smallest_class})",
        ]
        if self.clean:
            lines += ["  result:   nothing identifying found: no planted value in any file "
                      "under the home",
                      "            (store, database) or in the index, and no review flag"]
        else:
            lines.append("  result:   PROBLEMS FOUND")
            lines += [f"  planted value in {p}" for p in self.planted_found]
            lines += [f"  flagged by review: {f}" for f in self.flagged]
            lines += [f"  rejected: {r}" for r in self.rejections]
            lines += [f"  export: {p}" for p in self.export_problems]
        return "\n".join(lines)


@dataclass(frozen=True)
class PlantedSearch:
    """Finds planted values in bytes: as UTF-8 or Latin-1, in any letter case.

    Plain substring search of lower-cased bytes: one pass per value in C, where a regular
    expression of a hundred alternatives would crawl through megabytes of pixel data.
    """

    forms: frozenset[bytes]

    @classmethod
    def of(cls, values: Iterable[str]) -> PlantedSearch:
        forms: set[bytes] = set()
        for value in values:
            # bytes.lower() folds ASCII only: the upper-case spelling covers "SYNNØVE".
            for text in (value, value.upper(), value.lower()):
                forms.add(text.encode("utf-8").lower())
                with suppress(UnicodeEncodeError):
                    forms.add(text.encode("latin-1").lower())
        return cls(frozenset(f for f in forms if f))

    def hints(self, data: bytes) -> list[str]:
        """The first two characters of each value found (never more: no leak of a leak)."""
        low = data.lower()
        return sorted({form[:2].decode("latin-1").upper() + "…"
                       for form in self.forms if form in low})


def files_holding(root: Path, search: PlantedSearch) -> list[str]:
    """``relative path (XY…)`` for every file under ``root`` that holds a planted value."""
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        try:
            hints = search.hints(path.read_bytes())
        except OSError:
            continue
        if hints:
            found.append(f"{path.relative_to(root)} ({', '.join(hints)})")
    return found


def _index_holding(inst: Installation, search: PlantedSearch) -> list[str]:
    """``index: where`` for every text of the project's index holding a planted value.

    The byte search of the home sees a SQLite index; this asks the database itself, so that
    an index in PostgreSQL is searched as well.
    """
    project = get_project(inst, ACRONYM)
    with inst.db.session() as session:
        texts = session.execute(
            select(TagInventory.keyword_path, TagValue.value)
            .join(TagInventory, (TagInventory.project_id == TagValue.project_id)
                  & (TagInventory.tag_path == TagValue.tag_path))
            .where(TagValue.project_id == project.id)).all()
        texts += session.execute(
            select(Study.study_uid, Study.study_description)
            .where(Study.project_id == project.id)).all()
        texts += session.execute(
            select(Series.series_uid, Series.series_description)
            .join(Study, Series.study_id == Study.id)
            .where(Study.project_id == project.id)).all()
    return sorted({f"index: {where}" for where, text in texts
                   if text and search.hints(text.encode("utf-8"))})


def _references(store: Path) -> tuple[int, int]:
    """(image references, those that name a stored instance) across the stored files."""
    stored: set[str] = set()
    referenced: list[str] = []
    for path in store.rglob("*.dcm"):
        ds = dcmread(path, stop_before_pixels=True)
        stored.add(str(ds.SOPInstanceUID))
        for item in ds.get("ReferencedImageSequence", None) or []:
            referenced.append(str(item.ReferencedSOPInstanceUID))
    return len(referenced), sum(1 for uid in referenced if uid in stored)


def _ensure_project(inst: Installation) -> None:
    # The demo makes a project, an owner with a printed password and an export: never in
    # an index that holds real projects (RPACS_HOME or RPACS_DATABASE_URL left pointing at
    # production).
    others = sorted(p.acronym for p in list_projects(inst) if p.acronym != ACRONYM)
    if others:
        raise InvalidInputError(
            f"the demo needs a home of its own: the index of {inst.settings.home} holds "
            f"{len(others)} other project(s) ({', '.join(others[:3])}); run "
            "rpacs demo --home DIR")
    try:
        get_project(inst, ACRONYM)
    except NotFoundError:
        today = dt.date.today()
        create_project(inst, ProjectSpec(
            acronym=ACRONYM, rek="2026/0001", pi_name="Demo Investigator",
            pi_email="pi@example.org", start_date=today.replace(day=1),
            end_date=today.replace(year=today.year + 3, day=1),
            participant_pattern=r"^DEMO-\d{4}$", events=["baseline", "followup"],
        ), actor="demo")


def _rpacs_command() -> str:
    """``rpacs`` when it is on PATH, else the full path of this installation's script."""
    script = Path(sys.executable).with_name("rpacs")
    if shutil.which("rpacs") or not script.is_file():
        return "rpacs"
    return str(script)


def _shown_url(url: str) -> str:
    """The database URL with its password masked: the report is printed."""
    return make_url(url).render_as_string(hide_password=True)


def run_demo(inst: Installation) -> DemoReport:
    """Create the demo project (once), import the synthetic study and check the result.

    Running it again on the same home imports the same bytes, so nothing changes and the
    report counts every file as already present.
    """
    _ensure_project(inst)
    patient = SyntheticPatient()
    home = inst.settings.home
    # The input stands in for clinical data, so it is kept outside RPACS_HOME (which holds
    # de-identified data only) and removed once imported.
    folder = Path(tempfile.mkdtemp(prefix="rpacs-demo-input-"))
    try:
        paths = write_mr_study(folder, seed=1, n_series=SERIES, slices=SLICES,
                               patient=patient)
        summary = import_paths(inst, ACRONYM, PARTICIPANT, EVENT, [folder], actor="demo")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    store = inst.settings.store_dir / ACRONYM
    export = _export(inst, patient)
    # Close the connections so that SQLite folds its write-ahead log into the database
    # file: the search below must see everything the index holds.
    inst.db.dispose()
    search = PlantedSearch.of(patient.planted_values())
    found = files_holding(home, search) + _index_holding(inst, search)
    reviews = review_project(inst, ACRONYM)
    references, resolved = _references(store)
    return DemoReport(
        home=str(home),
        database=_shown_url(inst.settings.resolved_database_url),
        store=str(store),
        input_folder=str(folder),
        files=len(paths),
        stored=summary.stored,
        present=summary.present,
        rejected=len(summary.rejected),
        tag_paths=len(reviews),
        references=references,
        references_resolved=resolved,
        review_command=f"RPACS_HOME={home} {_rpacs_command()} review {ACRONYM}",
        planted_found=found,
        flagged=[f"{r.keyword_path}: {', '.join(r.flags)}" for r in reviews if r.flags],
        rejections=[f"{Path(r.source).name}: {r.reason}" for r in summary.rejected],
        **export,
    )


def _export(inst: Installation, patient: SyntheticPatient) -> dict[str, Any]:
    """Export the demo project with :data:`DEMO_SPEC` into ``<home>/exports``.

    The sidecar (the research table with the real birth date) is written outside the home
    and removed after; the previous demo export is replaced, and comes out byte-identical.
    """
    spec = ExportSpec.from_yaml(DEMO_SPEC)
    out = inst.settings.home / "exports"
    for old in (out / spec.name, beside(out, spec, "coupling-list.csv"),
                beside(out, spec, "risk-report.json")):
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink(missing_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="rpacs-demo-sidecar-"))
    sidecar = folder / "participants.csv"
    birth = patient.birth_date
    sidecar.write_text(f"research_id,birth_date\n{PARTICIPANT},{birth[:4]}-{birth[4:6]}-"
                       f"{birth[6:]}\n", encoding="utf-8")
    try:
        result = run_export(inst, ACRONYM, spec, out, sidecar=sidecar, actor="demo")
    except ResidualPhiError as exc:
        return {"export_problems": [str(exc)]}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "export_package": result.package,
        "export_files": result.files,
        "export_smallest_class": result.risk["smallest_class"],
        "export_problems": [f"NIfTI not made for {f}" for f in result.nifti_failed],
    }
