"""Exports: project-specific packages in DICOM and NIfTI, shaped by a YAML export spec."""

from .content import ExportPlan, ExportResult, Finding, ManifestRow, TagChange
from .enum import DatesMode, Format, IdentityMode, PackageKind, TagAction
from .layout import DEFAULT_LAYOUT, Layout, safe_name
from .risk import DEFAULT_K, RiskReport, risk_report
from .service import beside, plan_export, run_export
from .spec import ExportSpec, builtin_names, builtin_spec, load_spec

__all__ = [
    "DEFAULT_K",
    "DEFAULT_LAYOUT",
    "DatesMode",
    "ExportPlan",
    "ExportResult",
    "ExportSpec",
    "Finding",
    "Format",
    "IdentityMode",
    "Layout",
    "ManifestRow",
    "PackageKind",
    "RiskReport",
    "TagAction",
    "TagChange",
    "beside",
    "builtin_names",
    "builtin_spec",
    "load_spec",
    "plan_export",
    "risk_report",
    "run_export",
    "safe_name",
]
