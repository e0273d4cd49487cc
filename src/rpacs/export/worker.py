"""The per-series work of an export, run in worker processes.

A worker reads a series' stored files, rewrites them for the package
(:mod:`rpacs.export.rewrite`) and scans what it wrote (:mod:`rpacs.export.scan`) — on the
files' bytes where it can (:mod:`rpacs.export.instance`) — writes the
DICOM files and/or converts the series to NIfTI, and records the series as done in the
work folder, so that a killed export resumes at the first series not done.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..archive import write_runs
from ..deid import keep_by_size
from .content import Finding, ManifestRow, PlannedSeries, SeriesPart, SeriesResult
from .instance import ExportedInstance, export_instance, export_raw
from .nifti import ConversionError, convert_series, nifti_header_text
from .package import sha256_file, write_atomic
from .rewrite import Rewrite, Rewriter, Subject
from .scan import InstanceScan, ScanRules, scan_text


def series_label(series: PlannedSeries) -> str:
    number = "" if series.series_number is None else f"{series.series_number}"
    return f"{number} {series.series_description}".strip()


@dataclass(frozen=True)
class SeriesWork:
    """Everything a worker needs, fixed for one export run."""

    store_root: Path
    #: The package's files while it is built.
    tree: Path
    #: One JSON record per series done.
    done_dir: Path
    #: Scratch space for NIfTI conversion.
    scratch: Path
    rewrite: Rewrite
    scan: ScanRules
    dicom: bool
    nifti: bool
    subjects: dict[str, Subject]
    #: Where the DICOM files of a zip package go: one blob per part (None: into the tree,
    #: a file each).
    blobs: Path | None = None


def done_record(done_dir: Path, key: str) -> Path:
    return done_dir / f"{key}.json"


class SeriesExporter:
    """Exports series after series with one rewriter and one scanner per process."""

    def __init__(self, work: SeriesWork):
        self.work = work
        self.rewriter = Rewriter(work.rewrite)
        self.scanner = InstanceScan(work.scan)
        self._made: set[str] = set()
        # The roots as strings: per file, joining them to a relative path with pathlib
        # cost more than opening the file.
        self._store = str(work.store_root)
        self._tree = str(work.tree)

    def export(self, part: SeriesPart) -> SeriesResult:
        work = self.work
        series = part.series
        subject = work.subjects[series.research_id]
        result = SeriesResult(part.key)
        label = series_label(series)
        # Without DICOM output only the first instance is rewritten: for the risk report.
        instances = series.instances[part.start:part.stop if work.dicom else part.start + 1]
        blob: int | None = None  # the part's blob, and where its next entry starts
        offset = 0
        if work.dicom and work.blobs is not None:
            blob_name = f"{part.key}.bin"
            blob = os.open(work.blobs / blob_name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        # The series' files seen last, one per file size: a stored file lies out as an
        # earlier one of the same size, mostly (the new UIDs' lengths vary by a digit or
        # two, and so the files' layouts); a file of another size never does. Each holds
        # its file's bytes (its cut compares with them): a few sizes, the latest, are kept.
        seen: dict[int, ExportedInstance] = {}
        try:
            for index, planned in enumerate(instances):
                with open(os.path.join(self._store, planned.stored_path), "rb") as fh:
                    data = fh.read()
                if not work.dicom:  # the first instance, for the risk report's traits
                    # (its findings go with it: no DICOM file is written)
                    file = planned.path or series.key
                    first = export_raw(data, file, self.rewriter, self.scanner, subject,
                                       series.archive_uids) \
                        or export_instance(data, file, planned.path, self.rewriter,
                                           self.scanner, subject, series.archive_uids,
                                           scan=False)
                    result.traits = first.traits
                    break
                done = export_raw(data, planned.path, self.rewriter, self.scanner, subject,
                                  series.archive_uids, seen.get(len(data))) \
                    or export_instance(data, planned.path or series.key, planned.path,
                                       self.rewriter, self.scanner, subject,
                                       series.archive_uids)
                if done.plain is not None:  # (only its cut is needed of it)
                    keep_by_size(seen, len(data), ExportedInstance((), [], {}, done.plain))
                if index == 0 and part.start == 0:
                    result.traits = done.traits
                result.findings.extend(done.findings)
                runs = done.runs
                digest = hashlib.sha256()
                for run in runs:
                    digest.update(run)
                if blob is not None:
                    crc = 0
                    for run in runs:
                        crc = zlib.crc32(run, crc)
                    size = done.size
                    result.spans[planned.path] = (blob_name, offset, size, crc)
                    write_runs(blob, runs)
                    offset += size
                else:
                    self._write(os.path.join(self._tree, planned.path), runs)
                result.rows.append(ManifestRow(
                    planned.path, series.participant, series.event, series.modality, label,
                    digest.hexdigest(), series.container))
        finally:
            if blob is not None:
                os.close(blob)
        if work.nifti and part.start == 0:
            self._nifti(series, label, result)
        write_atomic(done_record(work.done_dir, part.key),
                     json.dumps(result.as_dict(), sort_keys=True).encode())
        return result

    def _write(self, path: str, runs: Sequence[bytes | memoryview]) -> None:
        """Write into the work folder's tree. No temporary name is needed there: nobody
        sees the tree before the whole package is renamed into place, and a series cut
        short by a kill has no done record, so the rerun writes all of it again."""
        folder = os.path.dirname(path)
        if folder not in self._made:
            os.makedirs(folder, exist_ok=True)
            self._made.add(folder)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            write_runs(fd, runs)
        finally:
            os.close(fd)

    def _nifti(self, series: PlannedSeries, label: str, result: SeriesResult) -> None:
        """dcm2niix on the series' stored files, then the sidecar made the package's.

        dcm2niix with ``-ba y`` writes no UID, ID or date into the image or the sidecar,
        so converting the stored files gives the same image as converting the exported
        ones (a test holds them byte-identical) without writing the series twice. The
        sidecar then gets the spec's tag rules for fields of the same name and loses
        identifying fields; sidecar and image header are scanned like everything else.
        """
        work = self.work
        scratch = work.scratch / series.key
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        try:
            outputs = self._convert(series, scratch)
        except ConversionError as exc:
            result.nifti_error = str(exc)
            return
        for output in outputs:
            relative = series.nifti_path + output.name[len("series"):]
            if output.suffix == ".json":
                text = output.read_text(encoding="utf-8")
            elif output.name.endswith(".nii.gz"):
                text = nifti_header_text(output)
            else:
                text = ""
            result.findings.extend(
                Finding(relative, f.tag, f.reason, f.masked) for f in scan_text(
                    output.name, text, work.scan, frozenset(series.archive_dates)))
            target = work.tree / relative
            if str(target.parent) not in self._made:
                target.parent.mkdir(parents=True, exist_ok=True)
                self._made.add(str(target.parent))
            os.replace(output, target)  # the scratch folder is on the tree's file system
            result.rows.append(ManifestRow(
                relative, series.participant, series.event, series.modality, label,
                sha256_file(target), series.container))  # streamed: an fMRI run is large
        shutil.rmtree(scratch, ignore_errors=True)

    def _convert(self, series: PlannedSeries, scratch: Path) -> list[Path]:
        """dcm2niix on exactly the series' planned instances; the files it wrote.

        dcm2niix reads a folder. The series' own store folder is read as it is when it
        holds exactly those instances, before and after the conversion (an import adding
        to the series meanwhile would add a slice the plan does not have); otherwise a
        folder of links to them, made in the scratch folder and not in /dev/shm, so that
        a killed export leaves nothing behind outside its work folder, which the rerun
        clears. Links cost two inodes' creation and removal per instance, which on this
        path is most of rpacs's time beside dcm2niix's own.
        """
        work = self.work
        planned = [work.store_root / p.stored_path for p in series.instances]
        folder = planned[0].parent
        names = {path.name for path in planned} \
            if all(path.parent == folder for path in planned) else None
        if names is not None and _names_in(folder) == names:
            try:
                outputs = convert_series(folder, scratch / "nifti", work.rewrite.rules,
                                         work.subjects[series.research_id])
            except ConversionError:
                if _names_in(folder) == names:
                    raise  # the series' own failure: links would fail alike
                outputs = []
            if outputs and _names_in(folder) == names:
                return outputs
            shutil.rmtree(scratch / "nifti", ignore_errors=True)
        links = scratch / "links"
        links.mkdir()
        try:
            for index, path in enumerate(planned):
                os.symlink(path, links / f"{index:05d}.dcm")
            return convert_series(links, scratch / "nifti", work.rewrite.rules,
                                  work.subjects[series.research_id])
        finally:
            shutil.rmtree(links, ignore_errors=True)


def _names_in(folder: Path) -> set[str] | None:
    """The names in ``folder``; None when it cannot be listed."""
    try:
        return set(os.listdir(folder))
    except OSError:
        return None


# The pool's worker processes keep one SeriesExporter each, made by the initializer.
_exporter: SeriesExporter | None = None


def init_worker(work: SeriesWork, forked: bool = False) -> None:
    """Make this process's exporter; ``forked``: in a worker process of the pool."""
    global _exporter
    _exporter = SeriesExporter(work)
    if forked:
        # A forked worker inherits the parent's modules and plan, which live as long as
        # it does: frozen, its collector never walks them again as the per-instance
        # garbage sets it off, nor writes into their headers, which copies the parent's
        # pages. Never in the caller's own process, whose objects are not all for life.
        gc.freeze()


def export_part(part: SeriesPart) -> SeriesResult:
    assert _exporter is not None, "init_worker was not called in this process"
    return _exporter.export(part)
