"""``rpacs demo``: a project, a synthetic MR study with planted PHI, its import and review."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import NotFoundError
from ..ingest import import_paths
from ..installation import Installation
from ..projects import ProjectSpec, create_project, get_project
from ..review import review_project
from .synthetic import SyntheticPatient, write_mr_study

ACRONYM = "DEMO-MR"
PARTICIPANT = "DEMO-0001"
EVENT = "baseline"


@dataclass
class DemoReport:
    home: str
    database: str
    store: str
    input_folder: str
    files: int
    stored: int
    present: int
    rejected: int
    tag_paths: int
    planted_found: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.planted_found and not self.flagged and not self.rejected

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "clean": self.clean}

    def render(self) -> str:
        lines = [
            f"rpacs demo: project {ACRONYM}, participant {PARTICIPANT}, event {EVENT}",
            f"  input: synthetic clinical MR study with planted PHI, written to "
            f"{self.input_folder} and removed after the import",
            f"  {self.files} files -> stored {self.stored}, already present {self.present}, "
            f"rejected {self.rejected}",
            f"  home:     {self.home}",
            f"  database: {self.database}",
            f"  store:    {self.store}",
            f"  review:   {self.tag_paths} tag paths in the project's inventory "
            f"(RPACS_HOME={self.home} rpacs review {ACRONYM})",
        ]
        if self.clean:
            lines.append("  review: nothing identifying found; no planted value is in any "
                         "file under the home folder (store, database, logs)")
        else:
            lines += [f"  FOUND planted value in: {p}" for p in self.planted_found]
            lines += [f"  FLAGGED: {f}" for f in self.flagged]
        return "\n".join(lines)


def _ensure_project(inst: Installation) -> None:
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


def run_demo(inst: Installation) -> DemoReport:
    """Create the demo project (once), import the synthetic study and check the result."""
    _ensure_project(inst)
    patient = SyntheticPatient()
    # The input stands in for clinical data, so it stays outside RPACS_HOME (which holds
    # de-identified data only) and is removed once imported.
    folder = Path(tempfile.mkdtemp(prefix="rpacs-demo-input-"))
    try:
        paths = write_mr_study(folder, seed=1, n_series=3, slices=12)
        summary = import_paths(inst, ACRONYM, PARTICIPANT, EVENT, [folder], actor="demo")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    store = inst.settings.store_dir / ACRONYM
    planted = [v.encode("utf-8") for v in patient.planted_values()]
    inst.db.dispose()  # flush SQLite's write-ahead log so the database file is complete
    found = sorted({
        f"{path.relative_to(inst.settings.home)} ({value.decode()[:2]}…)"
        for path in inst.settings.home.rglob("*") if path.is_file()
        for value in planted if value in path.read_bytes()
    })
    reviews = review_project(inst, ACRONYM)
    for review in reviews:
        for value, _count in review.top_values:
            if any(p.decode() in value for p in planted):
                found.append(f"index: {review.keyword_path}")
    return DemoReport(
        home=str(inst.settings.home),
        database=inst.settings.resolved_database_url,
        store=str(store),
        input_folder=str(folder),
        files=len(paths),
        stored=summary.stored,
        present=summary.present,
        rejected=len(summary.rejected),
        tag_paths=len(reviews),
        planted_found=found,
        flagged=[f"{r.keyword_path}: {', '.join(r.flags)}" for r in reviews if r.flags],
    )
