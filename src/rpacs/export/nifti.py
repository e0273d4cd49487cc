"""NIfTI by dcm2niix, one series at a time, with sidecars that identify no one.

dcm2niix comes from its PyPI package (``dcm2niix.bin``), so every installation converts
with the same version, whatever the system has. It reads the series' *exported* DICOM
files (identity, UIDs and dates already as in the package) from a folder of their own and
writes into another; its JSON sidecar then loses every field that names or dates a person,
a place or a device instance (:data:`IDENTIFYING_FIELDS`).
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
from pathlib import Path

from .spec import TagRule

#: dcm2niix sidecar fields left out: names, IDs, UIDs, dates, places, device instances.
IDENTIFYING_FIELDS = frozenset({
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge",
    "PatientWeight", "PatientSize", "AccessionNumber", "StudyInstanceUID",
    "SeriesInstanceUID", "StudyID", "StudyDate", "SeriesDate", "AcquisitionDate",
    "AcquisitionDateTime", "ContentDate", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber",
    "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName",
    "ProcedureStepDescription", "StudyDescription", "FrameOfReferenceUID",
    "ImageComments", "PatientPosition_Original",
})
#: Bytes of a NIfTI file the scan reads: the 352-byte header and room for extensions.
HEADER_BYTES = 8192
#: Conversion of a series taking longer than this is given up (and reported).
TIMEOUT_SECONDS = 600


class ConversionError(Exception):
    """dcm2niix could not convert a series; the message says why (no patient data)."""


def dcm2niix_binary() -> str:
    import dcm2niix

    return str(dcm2niix.bin)


def convert_series(dicom_dir: Path, out_dir: Path, rules: tuple[TagRule, ...] = (),
                   added: dict[str, str] | None = None) -> list[Path]:
    """Convert the one series in ``dicom_dir``; the files written (``series*``), sorted.

    The JSON sidecars get the spec's tag ``rules`` for the fields named like the rule's
    attribute (``added``: the participant's sidecar values) and lose
    :data:`IDENTIFYING_FIELDS`.

    ``-z y`` gzips with dcm2niix's own zlib (no pigz: the same bytes on every machine),
    ``-ba y`` lets dcm2niix itself leave patient fields out of the sidecar.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [dcm2niix_binary(), "-z", "y", "-ba", "y", "-b", "y", "-f", "series",
               "-w", "1", "-o", str(out_dir), str(dicom_dir)]
    try:
        done = subprocess.run(command, capture_output=True, timeout=TIMEOUT_SECONDS,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise ConversionError(f"dcm2niix took more than {TIMEOUT_SECONDS} s") from exc
    except OSError as exc:
        raise ConversionError(f"dcm2niix could not be run ({exc.strerror})") from exc
    written = sorted(p for p in out_dir.iterdir() if p.is_file())
    if not any(p.name.endswith(".nii.gz") for p in written):
        reason = _reason(done.stdout + done.stderr) or f"exit code {done.returncode}"
        raise ConversionError(f"dcm2niix wrote no image ({reason})")
    for path in written:
        if path.suffix == ".json":
            strip_sidecar(path, rules, added or {})
    return written


def _reason(output: bytes) -> str:
    """dcm2niix's error or warning lines, without paths (which could name anything)."""
    lines = [line.strip() for line in output.decode("utf-8", "replace").splitlines()
             if line.startswith(("Error", "Warning", "Unsupported"))]
    text = "; ".join(line.split(":", 1)[0] if "/" in line else line for line in lines)
    return text[:200]


def strip_sidecar(path: Path, rules: tuple[TagRule, ...] = (),
                  added: dict[str, str] | None = None) -> None:
    """Rewrite a JSON sidecar: the spec's rules applied to fields of their attribute's
    name (a removed one is left out), :data:`IDENTIFYING_FIELDS` left out, key order kept."""
    from .rewrite import apply_rules

    data = json.loads(path.read_text(encoding="utf-8"))
    for rule in rules:
        if rule.keyword in data and isinstance(data[rule.keyword], str):
            value = apply_rules((rule,), rule.tag, data[rule.keyword], added or {})
            if value is None:
                del data[rule.keyword]
            else:
                data[rule.keyword] = value
    kept = {k: v for k, v in data.items() if k not in IDENTIFYING_FIELDS}
    path.write_text(json.dumps(kept, indent=2, ensure_ascii=True) + "\n", encoding="utf-8")


def nifti_header_text(path: Path) -> str:
    """The printable text of a .nii.gz header and extensions (what the scan reads there)."""
    with gzip.open(path, "rb") as fh:
        head = fh.read(HEADER_BYTES)
    return re.sub(r"[^\x20-\x7e]+", "\n", head.decode("latin-1"))
