"""NIfTI by dcm2niix, one series at a time, with sidecars that identify no one.

dcm2niix comes from its PyPI package (``dcm2niix.bin``), so every installation converts
with the same version, whatever the system has. It reads the series' *stored* files (the
images are the same; reading them saves writing a DICOM copy per NIfTI), so its JSON
sidecar says what the archive says until :func:`strip_sidecar` makes it say what the
exported files say: it loses every field that names or dates a person, a place or a
device instance (:data:`IDENTIFYING_FIELDS`), and its text is changed as the files' is.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
from pathlib import Path

from .rewrite import Subject, exported_text
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
#: dcm2niix's options, the output folder and the input aside (see :func:`convert_series`).
DCM2NIIX_OPTIONS = ("-z", "y", "-ba", "y", "-b", "y", "-c", "", "-f", "series", "-w", "1")
#: Conversion of a series taking longer than this is given up (and reported).
TIMEOUT_SECONDS = 600


class ConversionError(Exception):
    """dcm2niix could not convert a series; the message says why (no patient data)."""


def dcm2niix_binary() -> str:
    import dcm2niix

    return str(dcm2niix.bin)


def convert_series(dicom_dir: Path, out_dir: Path, rules: tuple[TagRule, ...] = (),
                   subject: Subject | None = None) -> list[Path]:
    """Convert the one series in ``dicom_dir``; the files written (``series*``), sorted.

    The JSON sidecars are made to say what the exported files say (:func:`strip_sidecar`,
    with the spec's tag ``rules`` and the ``subject`` whose series it is).

    ``-z y`` gzips with dcm2niix's own zlib (no pigz: the same bytes on every machine),
    ``-ba y`` lets dcm2niix itself leave patient fields out of the sidecar, and ``-c ""``
    leaves the image header's ``aux_file`` empty, which would otherwise hold the archive's
    ImageComments (free text the sidecar leaves out and the spec's rules may change).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [dcm2niix_binary(), *DCM2NIIX_OPTIONS, "-o", str(out_dir), str(dicom_dir)]
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
            strip_sidecar(path, rules, subject)
    return written


def _reason(output: bytes) -> str:
    """dcm2niix's error or warning lines, without paths (which could name anything)."""
    lines = [line.strip() for line in output.decode("utf-8", "replace").splitlines()
             if line.startswith(("Error", "Warning", "Unsupported"))]
    text = "; ".join(line.split(":", 1)[0] if "/" in line else line for line in lines)
    return text[:200]


#: Sidecar fields dcm2niix may fill from another attribute's text (ProtocolName from
#: SeriesDescription when a series has none): they take the exported text of the
#: attribute whose archive value they hold. Fields of codes and terms (Modality,
#: BodyPartExamined) never do, whatever they happen to equal.
DERIVED_TEXT_FIELDS = frozenset({"SeriesDescription", "ProtocolName", "StudyDescription",
                                 "ProcedureStepDescription",
                                 "PerformedProcedureStepDescription"})


def strip_sidecar(path: Path, rules: tuple[TagRule, ...] = (),
                  subject: Subject | None = None) -> None:
    """Rewrite a JSON sidecar of the archive's files as the export's files would have it.

    - A field named like a rule's attribute gets the value the export writes there
      (:func:`~rpacs.export.rewrite.exported_text`; left out when the rule removes it).
    - A field of :data:`DERIVED_TEXT_FIELDS` that no rule names and that holds a rule
      attribute's archive value gets that attribute's exported value: a text the rules
      change must not ship under another name.
    - Every other text has the research ID replaced as a word, as every text element of
      the files has.
    - :data:`IDENTIFYING_FIELDS` are left out. Key order is kept.
    """
    subject = subject or Subject("", "")
    data = json.loads(path.read_text(encoding="utf-8"))
    tags = dict((rule.keyword, rule.tag) for rule in rules)
    carried: dict[str, str | None] = {}  # a rule attribute's archive value → exported
    for keyword, tag in tags.items():
        before = data.get(keyword)
        if isinstance(before, str) and before and before not in carried:
            carried[before] = exported_text(rules, tag, before, subject)
    kept: dict[str, object] = {}
    for key, value in data.items():
        if key in IDENTIFYING_FIELDS:
            continue
        if isinstance(value, str):
            if key in tags:
                value = exported_text(rules, tags[key], value, subject)
            elif key in DERIVED_TEXT_FIELDS and value in carried:
                value = carried[value]
            else:
                value = subject.renamed(value)
            if value is None:
                continue
        elif isinstance(value, list):
            value = [subject.renamed(v) if isinstance(v, str) else v for v in value]
        kept[key] = value
    path.write_text(json.dumps(kept, indent=2, ensure_ascii=True) + "\n", encoding="utf-8")


def nifti_header_text(path: Path) -> str:
    """The printable text of a .nii.gz header and extensions (what the scan reads there)."""
    with gzip.open(path, "rb") as fh:
        head = fh.read(HEADER_BYTES)
    return re.sub(r"[^\x20-\x7e]+", "\n", head.decode("latin-1"))
