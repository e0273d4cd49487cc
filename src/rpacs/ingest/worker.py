"""The per-file work of an import, run in worker processes.

A worker reads one source, de-identifies it, writes the result atomically and hands back a
:class:`~rpacs.archive.StoredInstance` — de-identified fields only. The original data lives
only in this process's memory while the file is worked on; the keyed hash of the original
PatientID is the one thing derived from it that leaves.

This module is the worker processes' whole start-up (see :mod:`rpacs.ingest.pool`): it and
what it imports must not load SQLAlchemy, which is the parent's to load meanwhile.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import pickle
import re
import zipfile
from typing import Any

from pydicom import Dataset
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement

from ..archive import PutOutcome, StoredInstance
from ..deid import (
    Deidentifier,
    Profile,
    RawResult,
    deidentify_raw,
    looks_like_dicom,
    quiet,  # noqa: F401  (pydicom's value warnings off)
    read_instance,
    write_instance,
)
from ..errors import DeidentificationError, DicomInputError, StorageError
from ..review import InstanceEntries, file_meta_entries, tag_entries, written_groups
from .content import NotDicom, Outcome, Rejection
from .plan import WorkPlan
from .sources import Source

_DICOMDIR_CLASS = re.compile(rb"1\.2\.840\.10008\.1\.3\.10(?![0-9.])")
#: VRs stored as binary numbers: their raw bytes are not text.
_BINARY_NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT", None})
_STUDY, _SERIES, _SOP_INSTANCE = 0x0020000D, 0x0020000E, 0x00080018


#: Members of a zip found inside an import read for DICOM at most (their first bytes).
_ZIP_MEMBERS_READ = 64


def _holds_dicom(data: bytes) -> bool:
    """Whether the zip file ``data`` has a DICOM file among its first members."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist()[:_ZIP_MEMBERS_READ]:
                if info.is_dir():
                    continue
                with archive.open(info) as member:
                    if looks_like_dicom(member.read(1024)):
                        return True
    except (zipfile.BadZipFile, OSError, RuntimeError, EOFError):
        return False  # not readable as a zip (encrypted, cut short): nothing to tell
    return False


def patient_key(installation_secret: bytes, patient_id: str) -> str:
    """Keyed hash of an original PatientID: links a person's studies, reveals nothing."""
    if not patient_id:
        return ""
    return hmac.new(installation_secret, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()


def _text(ds: Dataset, keyword: str) -> str:
    """An index field's text, read from the raw bytes when pydicom has not decoded it."""
    tag = tag_for_keyword(keyword)
    element = ds.get_item(tag) if tag is not None else None
    if element is None:
        return ""
    if isinstance(element, RawDataElement) and element.VR not in _BINARY_NUMBER_VRS:
        data = element.value or b""
        try:
            return data.decode("utf-8").strip(" \x00")
        except UnicodeDecodeError:
            return data.decode("latin-1").strip(" \x00")
    value = ds[tag].value
    return "" if value is None else str(value).strip()


def _number(ds: Dataset, keyword: str) -> int | None:
    text = _text(ds, keyword)
    try:
        return int(float(text)) if text else None
    except ValueError:
        return None


class Worker:
    """Turns sources into outcomes with one :class:`Deidentifier` built once per process."""

    def __init__(self, plan: WorkPlan):
        self.plan = plan
        # As rpacs.projects.deid_profile makes it, here because it needs pydicom.
        profile = (Profile.from_yaml(plan.profile_yaml) if plan.profile_yaml
                   else Profile.default())
        self.deidentifier = Deidentifier(
            profile, plan.project_secret, plan.identity, plan.date_offset_days
        )

    def process(self, source: Source) -> Outcome:
        try:
            data = source.read()
        except DicomInputError as exc:
            return Rejection(source.name, exc.reason)
        if not data:
            return Rejection(source.name, "empty file (0 bytes)")
        if data[:4] == b"PK\x03\x04" and _holds_dicom(data):
            # Its instances would be skipped unseen: a nested zip, or one named otherwise.
            # (A viewer's .jar or a .docx report on a CD is a zip too: skipped as it was.)
            return Rejection(source.name, "a zip file of DICOM files inside a zip, or not "
                             "named .zip: only a file named .zip is opened; unpack or rename "
                             "it")
        if not looks_like_dicom(data):
            return NotDicom(source.name, "not a DICOM file")
        if data[128:132] == b"DICM" and _DICOMDIR_CLASS.search(data, 132, 1024):
            return NotDicom(source.name, "DICOMDIR (a media directory, not an instance)")
        try:
            return self._store(source.name, data)
        except (DicomInputError, DeidentificationError, StorageError) as exc:
            return Rejection(source.name, getattr(exc, "reason", None) or str(exc))
        except Exception as exc:
            return Rejection(source.name, f"could not be de-identified ({type(exc).__name__})")

    def _store(self, name: str, data: bytes) -> StoredInstance:
        index = self.plan.index
        fast = deidentify_raw(data, self.deidentifier)
        if fast is not None:
            # The common case, done on the bytes; the data set only when the index needs it.
            key = _text(fast.original(), "PatientID") if index else ""
            out = fast.data
            study_uid, series_uid, sop_uid = (fast.text(_STUDY), fast.text(_SERIES),
                                              fast.text(_SOP_INSTANCE))
        else:
            original = read_instance(data, name)
            key = _text(original, "PatientID") if index else ""
            self.deidentifier.deidentify(original)
            out = write_instance(original)
            study_uid, series_uid, sop_uid = (
                _text(original, "StudyInstanceUID"),
                _text(original, "SeriesInstanceUID"),
                _text(original, "SOPInstanceUID"),
            )
        prefix = f"{self.plan.path_prefix}/" if self.plan.path_prefix else ""
        relative = f"{prefix}{study_uid}/{series_uid}/{sop_uid}.dcm"
        outcome = self.plan.store.put(relative, out)
        if outcome is PutOutcome.CONFLICT:
            raise StorageError(
                "an instance with this SOPInstanceUID is already stored with different content"
            )
        if not index:
            return StoredInstance(source=name, relative_path=relative, size=len(out),
                                  sha256="", patient_key="", study_uid=study_uid,
                                  series_uid=series_uid, sop_uid=sop_uid)
        fields = _fast_fields(fast) if fast is not None else _fields(original)
        groups = (inventory_groups(fast) if fast is not None
                  else (frozenset(tag_entries(original)),))
        return StoredInstance(
            source=name,
            relative_path=relative,
            size=len(out),
            sha256=hashlib.sha256(out).hexdigest(),
            patient_key=patient_key(self.plan.installation_secret, key),
            study_uid=study_uid,
            series_uid=series_uid,
            sop_uid=sop_uid,
            tag_groups=groups,
            created=outcome is PutOutcome.CREATED,
            **fields,
        )


class _LayoutMemo:
    """What a caller made of the elements that the files cut from one layout write alike,
    by (the layout, the tags decided again) — :attr:`RawResult.alike`. The layout is kept
    with its value, so that its id stays its own; a few are in use at a time, one or two
    per series."""

    KEPT = 64

    def __init__(self) -> None:
        self._values: dict[tuple[int, frozenset[int]], tuple[object, Any]] = {}

    def get(self, alike: tuple[object, frozenset[int]]) -> Any:
        known = self._values.get((id(alike[0]), alike[1]))
        return known[1] if known is not None and known[0] is alike[0] else None

    def put(self, alike: tuple[object, frozenset[int]], value: Any) -> None:
        if len(self._values) >= self.KEPT:
            self._values.clear()
        self._values[(id(alike[0]), alike[1])] = (alike[0], value)


#: The inventory group of the elements a layout's files write alike.
_SHARED_GROUPS = _LayoutMemo()


def inventory_groups(fast: RawResult) -> InstanceEntries:
    """The tag inventory entries of a file made on the byte path, in groups
    (:func:`~rpacs.review.written_groups`).

    The files of a series are mostly cut from the first one's layout, and then write all
    but a few elements exactly as it does (:attr:`RawResult.alike`): those elements make
    one group, made once per layout, and only the elements decided again are read for
    each file. Besides the work, that makes an instance a dozen groups rather than one
    per element, for the pipe and for the index's counting.
    """
    alike = fast.alike
    meta = file_meta_entries(fast.meta_template() or fast.file_meta)
    if alike is None:
        return written_groups(meta, fast.written(), fast.subset)
    again = alike[1]
    shared = _SHARED_GROUPS.get(alike)
    if shared is None:
        written = list(fast.written())
        groups = written_groups(meta, written, fast.subset)
        _SHARED_GROUPS.put(alike, frozenset().union(*(
            group for (tag, _, _), group in zip(written, groups[1:], strict=True)
            if tag not in again)))
        return groups
    tags = sorted(again)
    # A private element decided again reaches into a block whose creator is written as
    # before, and so is not among the tags: its value names the element's entries.
    parts = written_groups(meta, fast.written_of(tags), fast.subset, fast.creators_of(tags))
    return (parts[0], shared, *parts[1:])


#: (StoredInstance field, keyword, whether a number) of what the index keeps of an instance.
_INDEX_FIELDS = (
    ("sop_class_uid", "SOPClassUID", False),
    ("study_id", "StudyID", False),
    ("study_date", "StudyDate", False),
    ("study_time", "StudyTime", False),
    ("study_description", "StudyDescription", False),
    ("modality", "Modality", False),
    ("series_number", "SeriesNumber", True),
    ("series_description", "SeriesDescription", False),
    ("body_part", "BodyPartExamined", False),
    ("series_date", "SeriesDate", False),
    ("instance_number", "InstanceNumber", True),
    ("rows", "Rows", True),
    ("columns", "Columns", True),
    ("frames", "NumberOfFrames", True),
)
_INDEX_TAGS = tuple(tag_for_keyword(keyword) for _, keyword, _ in _INDEX_FIELDS)
#: Index field values by the raw element and encoding they were read from: the files of a
#: series repeat most of them, and reading a binary number converts it with pydicom.
_FIELD_VALUES: dict[tuple, Any] = {}
_MISSING = object()


def _fields(ds: Dataset) -> dict[str, Any]:
    """The index fields of a de-identified data set."""
    out: dict[str, Any] = {name: (_number if number else _text)(ds, keyword)
                           for name, keyword, number in _INDEX_FIELDS}
    out["transfer_syntax"] = str(ds.file_meta.get("TransferSyntaxUID", ""))
    return out


#: The index fields of the elements a layout's files write alike, and the encoding they
#: were read with: (encoding, fields).
_SHARED_FIELDS = _LayoutMemo()


def _fast_fields(fast: RawResult) -> dict[str, Any]:
    """:func:`_fields` of the byte path's output, each value read once per distinct
    element (the data set of the few elements concerned is made only on a miss).

    A file cut from a layout (:attr:`RawResult.alike`) writes all but the elements decided
    again as every file of that layout does, in the same encoding: only those fields are
    read for it, the others are the first such file's.
    """
    alike = fast.alike
    shared = _SHARED_FIELDS.get(alike) if alike is not None else None
    if shared is not None:
        encoding, out = shared[0], dict(shared[1])
        again = alike[1]  # type: ignore[index]
        wanted = [(field, tag) for field, tag in zip(_INDEX_FIELDS, _INDEX_TAGS, strict=True)
                  if tag in again]
    else:
        encoding, out = fast.encoding(), {}
        wanted = list(zip(_INDEX_FIELDS, _INDEX_TAGS, strict=True))
    subset: Dataset | None = None
    for (name, keyword, number), tag in wanted:
        raw = fast.raw_value(tag)
        key = (tag, encoding, raw) if raw is None or type(raw) is tuple else None
        value = _FIELD_VALUES.get(key, _MISSING) if key is not None else _MISSING
        if value is _MISSING:
            if subset is None:
                subset = fast.subset(_INDEX_TAGS)
            value = (_number if number else _text)(subset, keyword)
            if key is not None:
                if len(_FIELD_VALUES) > 10_000:
                    _FIELD_VALUES.clear()
                _FIELD_VALUES[key] = value
        out[name] = value
    if shared is not None:
        return out
    out["transfer_syntax"] = syntax = encoding[2]  # (implicit, character set, syntax)
    if alike is not None:
        _SHARED_FIELDS.put(alike, (encoding, {
            name: out[name] for (name, _, _), tag in zip(_INDEX_FIELDS, _INDEX_TAGS,
                                                          strict=True) if tag not in alike[1]
        } | {"transfer_syntax": syntax}))
    return out


#: This process's Worker of each plan met, by the plan's pickled bytes: making one (the
#: profile, the Deidentifier's tables) costs far more than looking it up for each task, and
#: a pool's worker may serve several runs. A few plans are kept; a new one past them
#: starts the cache afresh.
_WORKERS: dict[bytes, Worker] = {}
_PLANS_KEPT = 4


def process_task(plan: bytes, sources: list[Source]) -> list[Outcome]:
    """A task of the worker pool: ``sources`` worked on under the pickled WorkPlan ``plan``."""
    worker = _WORKERS.get(plan)
    if worker is None:
        if len(_WORKERS) >= _PLANS_KEPT:
            _WORKERS.clear()
        # The parent's own pickle, through the pool's pipe: trusted as any of its tasks.
        worker = _WORKERS[plan] = Worker(pickle.loads(plan))
    return [worker.process(source) for source in sources]
