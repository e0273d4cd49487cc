"""NIfTI by dcm2niix, one series at a time, with sidecars that identify no one.

dcm2niix comes from its PyPI package (``dcm2niix.bin``), so every installation converts
with the same version, whatever the system has. It reads the series' *exported* DICOM
files (identity, UIDs and dates already as in the package) from a folder of their own and
writes into another; its JSON sidecar then loses every field that names or dates a person,
a place or a device instance (:data:`IDENTIFYING_FIELDS`).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

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
#: Conversion of a series taking longer than this is given up (and reported).
TIMEOUT_SECONDS = 600


class ConversionError(Exception):
    """dcm2niix could not convert a series; the message says why (no patient data)."""


def dcm2niix_binary() -> str:
    import dcm2niix

    return str(dcm2niix.bin)


def convert_series(dicom_dir: Path, out_dir: Path) -> list[Path]:
    """Convert the one series in ``dicom_dir``; the files written (``series*``), sorted.

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
            strip_sidecar(path)
    return written


def _reason(output: bytes) -> str:
    """dcm2niix's error or warning lines, without paths (which could name anything)."""
    lines = [line.strip() for line in output.decode("utf-8", "replace").splitlines()
             if line.startswith(("Error", "Warning", "Unsupported"))]
    text = "; ".join(line.split(":", 1)[0] if "/" in line else line for line in lines)
    return text[:200]


def strip_sidecar(path: Path) -> None:
    """Rewrite a JSON sidecar without :data:`IDENTIFYING_FIELDS` (same key order)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    kept = {k: v for k, v in data.items() if k not in IDENTIFYING_FIELDS}
    path.write_text(json.dumps(kept, indent=2, ensure_ascii=True) + "\n", encoding="utf-8")
