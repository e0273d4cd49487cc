"""An archive to export from: a project with participants, events and MR series."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rpacs.ingest import import_paths
from rpacs.installation import Installation
from rpacs.projects import ProjectSpec, create_project
from rpacs.settings import Settings

from .. import dicom_factory as f

ACRONYM = "EXPTEST"
#: The spec of issue 3, exactly as written there (a copy, byte for byte, in this file).
ISSUE_SPEC = (Path(__file__).parent / "oslo-collab.yaml").read_text(encoding="utf-8")
#: (series number, description) of every study; the spec selects the first two.
SERIES = ((1, "t1_mprage  sag"), (2, "FLAIR_ax"), (3, "dwi_tra"))
SLICES = 4


@dataclass
class Archive:
    inst: Installation
    acronym: str
    participants: list[str]
    #: The archive's UIDs (study, series, instance) as stored.
    home: Path


def mr_slice(study: int, series: int, description: str, number: int,
             patient_id: str) -> object:
    ds = f.mr_dataset(f.Instance(study, series, number, patient_id))
    ds.SeriesDescription = description
    ds.StudyDate = ds.SeriesDate = f"2023{study % 12 + 1:02d}17"
    ds.PatientSex = "F" if study % 2 else "M"
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0, 0, float(number)]
    ds.PixelSpacing = [1, 1]
    ds.SliceThickness = 1
    ds.SpacingBetweenSlices = 1
    ds.EchoTime = 10
    ds.RepetitionTime = 500
    ds.MagneticFieldStrength = 3
    return ds


def build_archive(home: Path, tmp: Path, participants: int = 3,
                  events: tuple[str, ...] = ("baseline", "followup"),
                  database_url: str | None = None) -> Archive:
    inst = Installation.open(Settings(home=home, database_url=database_url, config=None,
                                      workers=2))
    create_project(inst, ProjectSpec(
        acronym=ACRONYM, rek="2024/99", pi_name="Principal Investigator",
        pi_email="pi@example.org", start_date="2024-01-01", end_date="2028-12-31",
        participant_pattern=r"EX-\d{4}", events=["baseline", "followup", "extra"]))
    ids = [f"EX-{n:04d}" for n in range(1, participants + 1)]
    study = 0
    for p, research_id in enumerate(ids):
        for event in events:
            study += 1
            folder = tmp / f"in-{study}"
            for series, description in SERIES:
                for number in range(1, SLICES + 1):
                    ds = mr_slice(study, series, description, number, f"PAT{p}")
                    f.write(ds, folder / f"{series}_{number}.dcm")
            summary = import_paths(inst, ACRONYM, research_id, event, [folder], workers=1)
            assert summary.ok, summary.rejected
    return Archive(inst, ACRONYM, ids, home)


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    built = build_archive(tmp_path / "home", tmp_path)
    yield built
    built.inst.close()


@pytest.fixture
def sidecar(tmp_path: Path) -> Path:
    path = tmp_path / "sidecar.csv"
    path.write_text("research_id,birth_date,group\nEX-0001,1978-05-12,A\n"
                    "EX-0002,1980-01-30,B\nEX-0003,1979-11-02,A\n")
    return path


@pytest.fixture
def issue_spec(tmp_path: Path) -> Path:
    path = tmp_path / "oslo-collab.yaml"
    path.write_text(ISSUE_SPEC)
    return path
