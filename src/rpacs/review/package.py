"""Review a zip of DICOM files without storing anything: the check before a package leaves.

The zip is unpacked into a temporary folder (inside RPACS_HOME/tmp, never elsewhere) that is
removed when the review is done, whatever happens. A zip with an entry that would land
outside that folder (``../``, an absolute path, a drive letter, a symbolic link) is refused
whole, as is one that unpacks to more than the size limit (a zip bomb).
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..audit import record_event
from ..deid.io import looks_like_dicom, read_instance
from ..errors import DicomInputError, InvalidInputError
from ..installation import Installation
from .content import PATH_LENGTH
from .entries import tag_entries
from .flags import ReviewContext, flags_for
from .service import TagReview

#: Values kept per tag path in the answer (the most frequent first).
VALUE_LIMIT = 50
_COPY_CHUNK = 1 << 20


@dataclass
class PackageReview:
    """The inventory of a zip, with every value's series, and what could not be read."""

    files: int
    dicom_files: int
    reviews: list[TagReview]
    #: tag path → value → labels of the series carrying it (number, modality, description).
    series: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    #: ``member: reason`` for each file that is not DICOM or could not be read.
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        rows = []
        for review in self.reviews:
            data = review.as_dict()
            by_value = self.series.get(review.tag_path, {})
            data["top_values"] = [{**v, "series": by_value.get(v["value"], [])}
                                  for v in data["top_values"]]
            rows.append(data)
        return {"files": self.files, "dicom_files": self.dicom_files,
                "skipped": self.skipped, "tags": rows}


def _unsafe(info: zipfile.ZipInfo) -> str | None:
    name = info.filename.replace("\\", "/")
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or (len(name) > 1 and name[1] == ":"):
        return "its path leaves the folder"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "it is a symbolic link"
    return None


def _check_members(archive: zipfile.ZipFile, max_bytes: int) -> list[zipfile.ZipInfo]:
    members = [i for i in archive.infolist() if not i.is_dir()]
    problems = [f"zip entry '{i.filename}': refused, {reason}"
                for i in members if (reason := _unsafe(i))]
    if problems:
        raise InvalidInputError(problems[:20])
    if sum(i.file_size for i in members) > max_bytes:
        raise InvalidInputError(f"the zip unpacks to more than {max_bytes // 2**20} MB, "
                                "the limit of this server (review_upload_max_mb)")
    return members


def _unpack(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], folder: Path,
            max_bytes: int) -> list[tuple[str, Path]]:
    """Copy each member out, counting bytes: a header may lie about the size."""
    written, unpacked = 0, []
    for number, info in enumerate(members):
        target = folder / f"{number:06d}.dcm"  # no name from the zip reaches the disk
        with archive.open(info) as source, target.open("wb") as out:
            while chunk := source.read(_COPY_CHUNK):
                written += len(chunk)
                if written > max_bytes:
                    raise InvalidInputError(
                        f"the zip unpacks to more than {max_bytes // 2**20} MB, the limit "
                        "of this server (review_upload_max_mb)")
                out.write(chunk)
        unpacked.append((info.filename, target))
    return unpacked


def _series_label(ds: Any) -> str:
    number = ds.get("SeriesNumber", "")
    parts = [f"series {number}" if number not in ("", None) else "series ?",
             str(ds.get("Modality", "") or ""), str(ds.get("SeriesDescription", "") or "")]
    return " ".join(p for p in parts if p)


def review_zip(zip_path: Path, work_dir: Path, max_bytes: int) -> PackageReview:
    """The tag inventory of the DICOM files in ``zip_path``; nothing of it is kept."""
    try:
        archive = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise InvalidInputError(f"the upload is not a readable zip file ({type(exc).__name__})"
                                ) from exc
    work_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="review-zip-", dir=work_dir))
    paths: Counter[str] = Counter()
    values: Counter[tuple[str, str]] = Counter()
    meta: dict[str, tuple[str, str]] = {}
    carriers: dict[tuple[str, str], set[str]] = defaultdict(set)
    study_dates: set[str] = set()
    skipped: list[str] = []
    dicom = 0
    try:
        with archive:
            members = _check_members(archive, max_bytes)
            unpacked = _unpack(archive, members, folder, max_bytes)
        for name, path in unpacked:
            data = path.read_bytes()
            if not looks_like_dicom(data):
                skipped.append(f"{name}: not a DICOM file")
                continue
            try:
                ds = read_instance(data, name)
            except DicomInputError as exc:
                skipped.append(f"{name}: {exc.reason}")
                continue
            dicom += 1
            label = _series_label(ds)
            if ds.get("StudyDate"):
                study_dates.add(str(ds.StudyDate)[:8])
            seen: set[str] = set()
            seen_values: set[tuple[str, str]] = set()
            for entry in tag_entries(ds):
                tag_path = entry.tag_path[:PATH_LENGTH]
                if tag_path not in seen:
                    seen.add(tag_path)
                    paths[tag_path] += 1
                    meta.setdefault(tag_path, (entry.keyword_path, entry.vr))
                pair = (tag_path, entry.value)
                if pair not in seen_values:  # once per instance, as in a project's index
                    seen_values.add(pair)
                    values[pair] += 1
                    carriers[pair].add(label)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return _package_review(len(unpacked), dicom, paths, values, meta, carriers,
                           study_dates, skipped)


def _package_review(files: int, dicom: int, paths: Counter[str],
                    values: Counter[tuple[str, str]], meta: dict[str, tuple[str, str]],
                    carriers: dict[tuple[str, str], set[str]], study_dates: set[str],
                    skipped: list[str]) -> PackageReview:
    by_path: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for (path, value), count in values.items():
        by_path[path].append((value, count))
    context = ReviewContext(own_values=frozenset(), first_date=min(study_dates, default=""),
                            last_date=max(study_dates, default=""))
    reviews, series = [], {}
    for path in sorted(paths):
        keyword_path, vr = meta[path]
        ranked = sorted(by_path[path], key=lambda x: (-x[1], x[0]))
        reviews.append(TagReview(
            tag_path=path, keyword_path=keyword_path, vr=vr, n_instances=paths[path],
            n_distinct=len(ranked), top_values=ranked[:VALUE_LIMIT],
            flags=flags_for(keyword_path, vr, (v for v, _ in ranked), context)))
        series[path] = {v: sorted(carriers[path, v]) for v, _ in ranked[:VALUE_LIMIT]}
    return PackageReview(files=files, dicom_files=dicom, reviews=reviews, series=series,
                         skipped=skipped)


def record_zip_review(inst: Installation, actor: str, result: PackageReview) -> None:
    """Note in the audit log who reviewed a package of how many files (no names, no values)."""
    with inst.db.session() as session:
        record_event(session, actor, "review.zip", None, result.dicom_files,
                     files=result.files)
