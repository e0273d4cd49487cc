"""What an export plans, finds and produces (no original values: the archive's are
de-identified already, and findings mask what they name)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class PlannedInstance:
    #: Path of the stored file, relative to the store.
    stored_path: str
    #: Path in the package ("" when the package holds no DICOM).
    path: str


@dataclass(frozen=True)
class PlannedSeries:
    """One series to export: where its files go, and for whom."""

    #: Stable name of the series in the work folder (the exported SeriesInstanceUID).
    key: str
    research_id: str
    participant: str
    event: str
    modality: str
    series_number: int | None
    series_description: str
    #: The zip the series goes into ("" for directory packages and a single zip).
    container: str
    instances: tuple[PlannedInstance, ...]
    #: NIfTI file path without its extension ("" when no NIfTI is made).
    nifti_path: str = ""
    #: The archive's StudyInstanceUID and SeriesInstanceUID: the scan looks for them.
    archive_uids: tuple[str, ...] = ()
    #: The archive's study and series dates: the NIfTI scan looks for them.
    archive_dates: tuple[str, ...] = ()


@dataclass(frozen=True)
class ManifestRow:
    path: str
    participant: str
    event: str
    modality: str
    series: str
    sha256: str
    container: str = ""


@dataclass(frozen=True)
class Finding:
    """Something identifying found in a written file: where, and why (value masked)."""

    file: str
    tag: str
    reason: str
    masked: str = ""


@dataclass(frozen=True)
class SeriesPart:
    """A unit of work: instances ``start:stop`` of a series (a long series is cut into
    parts so that all workers share it); part 0 also makes the series' NIfTI."""

    series: PlannedSeries
    start: int
    stop: int

    @property
    def key(self) -> str:
        return f"{self.series.key}.{self.start:06d}"

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass
class SeriesResult:
    """What a worker did with one series; kept in the work folder so a rerun resumes."""

    key: str
    rows: list[ManifestRow] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    #: Quasi-identifiers as exported: sex, age, birth_date, study_date.
    traits: dict[str, str] = field(default_factory=dict)
    #: Why NIfTI conversion failed ("" when it did not, or was not asked for).
    nifti_error: str = ""
    #: For zip packages, where each DICOM file's bytes are: path in the package ->
    #: (blob file name, offset, size, CRC-32).
    spans: dict[str, tuple[str, int, int, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        # Field by field rather than dataclasses.asdict, which deep-copies every value of
        # every row (all strings): a worker writes this for each part it exports, and asdict
        # cost a tenth of the part's own work.
        return {"key": self.key, "rows": [dict(vars(row)) for row in self.rows],
                "findings": [dict(vars(finding)) for finding in self.findings],
                "traits": dict(self.traits), "nifti_error": self.nifti_error,
                "spans": dict(self.spans)}

    @property
    def series_key(self) -> str:
        return self.key.split(".", 1)[0]

    @classmethod
    def merged(cls, parts: list[SeriesResult]) -> SeriesResult:
        """The parts of one series as one result (parts in order)."""
        parts = sorted(parts, key=lambda r: r.key)
        first = parts[0]
        return cls(key=first.series_key, rows=[row for p in parts for row in p.rows],
                   findings=[f for p in parts for f in p.findings], traits=first.traits,
                   nifti_error=first.nifti_error,
                   spans={path: span for p in parts for path, span in p.spans.items()})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeriesResult:
        return cls(key=data["key"], rows=[ManifestRow(**r) for r in data["rows"]],
                   findings=[Finding(**f) for f in data["findings"]],
                   traits=dict(data["traits"]), nifti_error=data.get("nifti_error", ""),
                   spans={path: tuple(span) for path, span in data.get("spans", {}).items()})


@dataclass(frozen=True)
class TagChange:
    tag: str
    before: str
    after: str


@dataclass
class ExportPlan:
    """Everything decided before a file is written: the dry run prints it."""

    spec_name: str
    spec_sha256: str
    project: str
    series: list[PlannedSeries]
    #: research ID → ID in the package.
    participants: dict[str, str]
    #: research ID → the sidecar columns as exported.
    added: dict[str, dict[str, str]]
    output: str
    #: New IDs and UIDs are drawn afresh on every run (no coupling list).
    fresh_every_run: bool = False
    #: A DICOMDIR file-set: its files are renamed PT…/ST…/SE…/IM… as media must be, in
    #: the layout's order.
    file_set: bool = False
    #: One instance of each series: the tags that change (dry run only).
    changes: dict[str, list[TagChange]] = field(default_factory=dict)

    @property
    def n_instances(self) -> int:
        return sum(len(s.instances) for s in self.series)

    def counts(self) -> list[tuple[str, str, str, int, int]]:
        """(participant, event, modality, series, instances), sorted."""
        series: Counter[tuple[str, str, str]] = Counter()
        instances: Counter[tuple[str, str, str]] = Counter()
        for s in self.series:
            key = (s.participant, s.event, s.modality)
            series[key] += 1
            instances[key] += len(s.instances)
        return [(*k, series[k], instances[k]) for k in sorted(series)]

    def first_paths(self, n: int = 10) -> list[str]:
        paths: list[str] = []
        for s in self.series:
            for i in s.instances:
                if i.path:
                    paths.append(i.path)
            if s.nifti_path:
                paths.append(s.nifti_path + ".nii.gz")
            if len(paths) >= n:
                break
        return paths[:n]


@dataclass
class ExportResult:
    """What an export wrote and where."""

    package: str
    files: int
    participants: int
    series: int
    instances: int
    nifti_failed: list[str]
    findings: list[Finding]
    risk: dict[str, Any]
    coupling_list: str = ""
    risk_report: str = ""
    resumed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ExportJobView:
    """An export job as the pages and the API show it (no path outside its folder)."""

    id: int
    project: str
    spec_name: str
    spec_sha256: str
    state: str
    done: int
    total: int
    started_by: str
    created_at: str
    finished_at: str | None
    error: str
    n_files: int
    #: The file name a download is sent under ("" until the job is done).
    download_name: str = ""
    #: Whether the job failed in a way that running it again continues.
    resumable: bool = False
    #: Who resumed the job last ("" if no one); ``started_by`` stays who started it.
    resumed_by: str = ""

    @property
    def percent(self) -> int:
        if self.state == "done":
            return 100
        return int(100 * self.done / self.total) if self.total else 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "percent": self.percent}


@dataclass(frozen=True)
class StoredSpecView:
    """A project's stored export spec, as listed and edited in the web app."""

    name: str
    text: str
    sha256: str
    updated_by: str
    updated_at: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
