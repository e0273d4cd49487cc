"""Exports: project-specific packages in DICOM and NIfTI, shaped by a YAML export spec."""

from .content import (
    ExportJobView,
    ExportPlan,
    ExportResult,
    Finding,
    ManifestRow,
    StoredSpecView,
    TagChange,
)
from .enum import DatesMode, Format, IdentityMode, JobState, PackageKind, TagAction
from .jobs import (
    INTERRUPTED,
    dry_run,
    export_download,
    export_job,
    export_risk,
    job_project,
    project_exports,
    recover_interrupted,
    resume_export,
    run_job,
    start_export,
)
from .layout import DEFAULT_LAYOUT, Layout, safe_name
from .risk import DEFAULT_K, RiskReport, risk_report
from .service import beside, plan_export, run_export
from .spec import ExportSpec, builtin_names, builtin_spec, load_spec
from .stored import LISTED_BUILTINS, resolve_spec, save_spec, stored_spec, stored_specs

__all__ = [
    "DEFAULT_K",
    "DEFAULT_LAYOUT",
    "INTERRUPTED",
    "LISTED_BUILTINS",
    "DatesMode",
    "ExportJobView",
    "ExportPlan",
    "ExportResult",
    "ExportSpec",
    "Finding",
    "Format",
    "IdentityMode",
    "JobState",
    "Layout",
    "ManifestRow",
    "PackageKind",
    "RiskReport",
    "StoredSpecView",
    "TagAction",
    "TagChange",
    "beside",
    "builtin_names",
    "builtin_spec",
    "dry_run",
    "export_download",
    "export_job",
    "export_risk",
    "job_project",
    "load_spec",
    "plan_export",
    "project_exports",
    "recover_interrupted",
    "resolve_spec",
    "resume_export",
    "risk_report",
    "run_export",
    "run_job",
    "safe_name",
    "save_spec",
    "start_export",
    "stored_spec",
    "stored_specs",
]
