"""Exports: plan (and dry run), run, resume — the package appears only when complete.

The parent process plans from the index alone (what to export, under which IDs, to which
paths, with every collision found before a file is written), then worker processes export
series by series into a work folder beside the package (``.<name>.export-work``), each
series recorded as done when its files are complete. The parent then writes the manifest,
participants table and README, scans, zips, and renames the package into place. A killed
export leaves only the work folder; rerunning the same spec resumes from it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import getpass
import hashlib
import json
import multiprocessing
import os
import re
import secrets
import shutil
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.datadict import dictionary_VR
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit import record_event
from ..db import (
    ExportId,
    ExportRun,
    Instance,
    Participant,
    Project,
    Series,
    Study,
    Withdrawal,
)
from ..deid import (
    Option,
    date_offset_days,
    quiet,  # noqa: F401  (pydicom's value warnings off)
    read_instance,
    shift_da,
    uid_for,
    write_instance,
)
from ..errors import ConflictError, InvalidInputError, NotFoundError, ResidualPhiError
from ..installation import Installation
from ..projects import date_offset_for, deid_profile, get_project
from ..review import ReviewContext
from .content import (
    ExportPlan,
    ExportResult,
    Finding,
    PlannedInstance,
    PlannedSeries,
    SeriesPart,
    SeriesResult,
    TagChange,
)
from .enum import DatesMode, Format, PackageKind, TagAction
from .identity import Sidecar, draw_ids, parse_date, spec_key
from .instance import traits_of
from .layout import render, safe_name, template_fields
from .package import (
    MANIFEST,
    PARTICIPANTS,
    README,
    RESERVED_NAMES,
    Span,
    manifest_text,
    participants_text,
    sha256_file,
    write_atomic,
    write_dicomdir,
    write_zip,
)
from .rewrite import Rewrite, Rewriter, Subject, exported_text
from .risk import DEFAULT_K, RiskReport, participant_traits, risk_report
from .scan import InstanceScan, ScanRules, mask, scan_text
from .spec import ExportSpec, value_problem
from .worker import SeriesWork, done_record, export_part, init_worker

Progress = Callable[[int, int], None]
_SERIES_DESCRIPTION, _STUDY_DESCRIPTION = 0x0008103E, 0x00081030
_TRAIT_TAGS = {0x00100030: "birth_date", 0x00100040: "sex", 0x00101010: "age"}
#: Instances per unit of work: a long series is shared by the workers in parts this big.
PART_SIZE = 200
#: Version of the work folder's layout; a work folder of another version is started over.
_WORK_VERSION = 4


@dataclass
class _Prepared:
    """A plan with what running it needs (keys, subjects, scan rules)."""

    plan: ExportPlan
    spec: ExportSpec
    project: Project
    rewrite: Rewrite
    subjects: dict[str, Subject]
    scan: ScanRules
    #: The key of a spec without coupling list (kept in the work folder only).
    run_key: bytes | None
    #: research ID → export ID pairs not yet stored.
    new_ids: dict[str, str]
    digest: str


def _rows(inst: Installation, project: Project, spec: ExportSpec) -> list[Any]:
    """The selected instances from the index, in package order."""
    sel = spec.select
    query = (
        select(Participant.research_id, Study.event, Study.study_uid, Study.study_id,
               Study.study_date, Study.study_description, Series.series_uid, Series.modality,
               Series.series_number, Series.series_description, Instance.sop_uid,
               Instance.instance_number, Instance.path, Instance.sha256)
        .join(Study, Study.participant_id == Participant.id)
        .join(Series, Series.study_id == Study.id)
        .join(Instance, Instance.series_id == Series.id)
        .where(Study.project_id == project.id)
        .order_by(Participant.research_id, Study.event, Study.study_date, Study.study_uid,
                  Series.series_number, Series.series_uid, Instance.instance_number,
                  Instance.sop_uid)
    )
    if sel.events is not None:
        query = query.where(Study.event.in_(sel.events))
    if sel.modalities is not None:
        query = query.where(Series.modality.in_(sel.modalities))
    if sel.participants is not None:
        query = query.where(Participant.research_id.in_(sel.participants))
    if sel.study_uid is not None:
        query = query.where(Study.study_uid == sel.study_uid)
    with inst.db.session() as session:
        rows = list(session.execute(query))
    if sel.series_description is not None:
        pattern = re.compile(sel.series_description)
        rows = [r for r in rows if pattern.search(r.series_description or "")]
    return rows


def _project_research_ids(inst: Installation, project: Project) -> set[str]:
    with inst.db.session() as session:
        return set(session.scalars(
            select(Participant.research_id).where(Participant.project_id == project.id)))


def _withdrawn(inst: Installation, project: Project) -> set[str]:
    with inst.db.session() as session:
        return set(session.scalars(
            select(Withdrawal.research_id).where(Withdrawal.project_id == project.id)))


def _stored_ids(inst: Installation, project: Project, spec: ExportSpec) -> dict[str, str]:
    with inst.db.session() as session:
        rows = session.execute(select(ExportId.research_id, ExportId.export_id).where(
            ExportId.project_id == project.id, ExportId.spec_name == spec.name))
        return {r: e for r, e in rows}


def _sidecar_values(spec: ExportSpec, project: Project, sidecar: Sidecar | None,
                    research_ids: list[str], extra_offset: int
                    ) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """(per research ID: column → DICOM value, column → participants.tsv value).

    Dates added back move by the offset the archive's dates moved (the project's, unless
    its profile keeps full dates) plus the spec's, so ages computed from them stay right.
    """
    columns = spec.sidecar_columns
    if not columns:
        return {r: {} for r in research_ids}, {r: {} for r in research_ids}
    if sidecar is None:
        raise InvalidInputError(f"--sidecar: the spec adds column(s) {', '.join(columns)} "
                                "from a sidecar CSV; give --sidecar FILE")
    sidecar.check(columns, research_ids)
    date_columns = {r.value for r in spec.tags if r.action is TagAction.FROM_SIDECAR
                    and _vr(r.tag) in ("DA", "DT")}
    # The VRs each other column is written as: its values must be valid ones.
    written_as = defaultdict(set)
    for rule in spec.tags:
        if rule.action is TagAction.FROM_SIDECAR and rule.value not in date_columns:
            written_as[rule.value].add(_vr(rule.tag))
    keeps_dates = Option.RETAIN_LONGITUDINAL_FULL_DATES in deid_profile(project).options
    dicom: dict[str, dict[str, str]] = {}
    table: dict[str, dict[str, str]] = {}
    bad: dict[str, list[str]] = defaultdict(list)
    invalid: dict[str, list[str]] = defaultdict(list)
    for research_id in research_ids:
        row = sidecar.rows[research_id]
        offset = extra_offset + (0 if keeps_dates else date_offset_for(project, research_id))
        dicom[research_id], table[research_id] = {}, {}
        for column in columns:
            value = row.get(column, "")
            if column in date_columns and value:
                date = parse_date(value)
                if date is None:
                    bad[column].append(research_id)
                    continue
                shifted = shift_da(date.strftime("%Y%m%d"), offset) \
                    if spec.dates is not DatesMode.REMOVE else ""
                dicom[research_id][column] = shifted
                table[research_id][column] = (f"{shifted[:4]}-{shifted[4:6]}-{shifted[6:]}"
                                              if shifted else "")
            else:
                if value and any(value_problem(vr, value) for vr in written_as[column]):
                    invalid[column].append(research_id)
                    continue
                dicom[research_id][column] = table[research_id][column] = value
    problems = [f"--sidecar: column '{c}' is not a date (YYYY-MM-DD) for {', '.join(ids)}"
                for c, ids in sorted(bad.items())]
    problems += [f"--sidecar: column '{c}' is not a valid "
                 f"{'/'.join(sorted(written_as[c]))} value for {', '.join(ids)}"
                 for c, ids in sorted(invalid.items())]
    if problems:
        raise InvalidInputError(problems)
    return dicom, table


def _vr(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def _prepare(inst: Installation, acronym: str, spec: ExportSpec, out: Path,
             sidecar: Sidecar | None, run_key: bytes | None) -> _Prepared:
    project = get_project(inst, acronym)
    unknown = sorted(set(spec.select.events or ()) - set(project.events))
    if unknown:
        raise InvalidInputError(f"select.events: {', '.join(unknown)} is not an event of "
                                f"{project.acronym} (one of: {', '.join(project.events)})")
    all_research = _project_research_ids(inst, project)
    # A typo would otherwise leave its participant out of the package without a word.
    # (A withdrawn participant is gone on purpose: a saved spec that names one still runs.)
    strangers = sorted(set(spec.select.participants or ()) - set(all_research)
                       - _withdrawn(inst, project))
    if strangers:
        raise InvalidInputError(f"select.participants: {', '.join(strangers)} "
                                f"{'is' if len(strangers) == 1 else 'are'} not a participant "
                                f"of {project.acronym}")
    rows = _rows(inst, project, spec)
    if not rows:
        raise NotFoundError(f"spec {spec.name}: select matches no stored instance of "
                            f"{project.acronym}")
    research_ids = sorted({r.research_id for r in rows})
    random_key = spec.random_identity and not spec.identity.coupling_list
    if random_key and run_key is None:
        run_key = secrets.token_bytes(32)
    key = run_key if random_key and run_key is not None else spec_key(project.secret, spec.name)
    if spec.random_identity:
        taken = {} if random_key else _stored_ids(inst, project, spec)
        ids = draw_ids(key, spec.identity, research_ids, taken, frozenset(all_research))
        # Without a coupling list nothing is stored: the table would be one.
        new_ids = {} if random_key else {r: e for r, e in ids.items() if r not in taken}
    else:
        ids, new_ids = {r: r for r in research_ids}, {}
    extra_offset = date_offset_days(key, "export-dates") if spec.dates is DatesMode.SHIFT else 0
    dicom_added, table_added = _sidecar_values(spec, project, sidecar, research_ids,
                                               extra_offset)
    rewrite = Rewrite(uid_key=key if spec.random_identity else None, dates=spec.dates,
                      date_offset=extra_offset, rules=spec.tags)
    subjects = {r: Subject(r, ids[r], dicom_added[r]) for r in research_ids}
    series = _plan_series(spec, rows, rewrite, subjects)
    study_ids = {rewrite.study_id(r.study_uid, r.study_id) for r in rows}
    dates = sorted(d for d in {rewrite.date(r.study_date) for r in rows} if d)
    context = ReviewContext(
        own_values=frozenset(set(ids.values()) | study_ids | set(project.events)
                             | {project.acronym}),
        first_date=dates[0] if dates else "", last_date=dates[-1] if dates else "")
    archive_uids = frozenset({r.study_uid for r in rows} | {r.series_uid for r in rows}) \
        if spec.random_identity else frozenset()
    scan = ScanRules(
        research_ids=frozenset(all_research) if spec.random_identity else frozenset(),
        archive_uids=archive_uids,
        check_dates=spec.dates is not DatesMode.KEEP,
        context=context,
        spec_tags=frozenset(r.tag for r in spec.tags
                            if r.action in (TagAction.SET, TagAction.FROM_SIDECAR)))
    _check_collisions(spec, series, scan.masked_path)
    digest = hashlib.sha256(json.dumps(
        [spec.sha256, [(s.key, [(i.stored_path, i.path) for i in s.instances])
                       for s in series], sorted(r.sha256 for r in rows),
         sorted(dicom_added.items()), _WORK_VERSION], sort_keys=True).encode()).hexdigest()
    plan = ExportPlan(spec_name=spec.name, spec_sha256=spec.sha256, project=project.acronym,
                      series=series, participants=ids,
                      added={ids[r]: v for r, v in table_added.items()},
                      output=str(_package_path(out, spec)), fresh_every_run=random_key,
                      file_set=spec.dicomdir)
    return _Prepared(plan, spec, project, rewrite, subjects, scan,
                     run_key if random_key else None, new_ids, digest)


def _plan_series(spec: ExportSpec, rows: Sequence[Any], rewrite: Rewrite,
                 subjects: dict[str, Subject]) -> list[PlannedSeries]:
    grouped: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        grouped.setdefault((row.study_uid, row.series_uid), []).append(row)
    studies: dict[tuple[str, str], list[str]] = defaultdict(list)  # for zip-per-study names
    for row in rows:
        ordered = studies[(row.research_id, row.event)]
        if row.study_uid not in ordered:
            ordered.append(row.study_uid)
    dicom = Format.DICOM in spec.formats
    nifti = Format.NIFTI in spec.formats
    # An instance's new UID (an HMAC) only where the layout names files by it.
    by_sop_uid = any(name == "sop_uid" for name, _ in template_fields(spec.layout.template))
    planned = []
    for (study_uid, series_uid), members in grouped.items():
        first = members[0]
        subject = subjects[first.research_id]
        participant = subject.export_id
        values = {
            "participant": participant,
            "event": first.event,
            "modality": first.modality,
            "study_date": rewrite.date(first.study_date) or "nodate",
            "study_description": exported_text(spec.tags, _STUDY_DESCRIPTION,
                                               first.study_description, subject) or "",
            "series_number": first.series_number,
            "series_description": exported_text(spec.tags, _SERIES_DESCRIPTION,
                                                first.series_description, subject) or "",
            "series_uid": rewrite.uid(series_uid),
        }
        new_study = rewrite.uid(study_uid)
        key = hashlib.sha256(f"{new_study}/{values['series_uid']}".encode()).hexdigest()[:32]
        instances = []
        for index, row in enumerate(members):
            if spec.dicomdir:
                path = f"{key}/{index:05d}.dcm"
            elif dicom:
                path = spec.layout.path({**values, "instance_number": row.instance_number,
                                         "sop_uid": rewrite.uid(row.sop_uid) if by_sop_uid
                                         else ""})
            else:
                path = ""
            instances.append(PlannedInstance(row.path, path))
        ordinal = studies[(first.research_id, first.event)].index(study_uid) + 1
        container = {
            PackageKind.ZIP_PER_PARTICIPANT: f"{safe_name(participant)}.zip",
            PackageKind.ZIP_PER_STUDY:
                f"{safe_name(participant)}_{safe_name(first.event)}_{ordinal}.zip",
        }.get(spec.package, "")
        planned.append(PlannedSeries(
            key=key, research_id=first.research_id, participant=participant,
            event=first.event, modality=first.modality, series_number=first.series_number,
            series_description=values["series_description"], container=container,
            instances=tuple(instances),
            nifti_path=render(spec.layout.series_template, values) if nifti else "",
            archive_uids=(study_uid, series_uid) if spec.random_identity else (),
            archive_dates=tuple(sorted({first.study_date} - {""}))
            if spec.dates is not DatesMode.KEEP else ()))
    return planned


def _check_collisions(spec: ExportSpec, series: list[PlannedSeries],
                      masked: Callable[[str], str]) -> None:
    """Two files on one path (letter case ignored: Windows and macOS do) is an error. The
    paths it names are ``masked`` as a scan's report masks them: they are made of data."""
    # By folded name, keeping the first spelling met: the error shows a real path.
    seen: dict[tuple[str, str], list[str]] = defaultdict(list)
    for s in series:
        for i in s.instances:
            if i.path:
                seen[(s.container, i.path.lower())].append(i.path)
        if s.nifti_path:
            path = s.nifti_path + ".nii.gz"
            seen[(s.container, path.lower())].append(path)
    for name in RESERVED_NAMES:
        seen[("", name.lower())].append(name)
    clashes = sorted(masked(paths[0]) for paths in seen.values() if len(paths) > 1)
    if clashes:
        cased = sorted(tuple(masked(p) for p in sorted(set(paths))[:2])
                       for paths in seen.values() if len(set(paths)) > 1)
        raise InvalidInputError(
            f"layout: {len(clashes)} path(s) would hold more than one file, e.g. "
            f"{', '.join(clashes[:3])} (add {{series_number}}, {{sop_uid}} or "
            "{study_date} to tell them apart)"
            + (f"; some differ only in letter case, which Windows and macOS do not tell "
               f"apart: {cased[0][0]} and {cased[0][1]}" if cased else ""))


def _package_path(out: Path, spec: ExportSpec) -> Path:
    return out / (f"{spec.name}.zip" if spec.package is PackageKind.ZIP else spec.name)


def package_path(out: Path, spec: ExportSpec) -> Path:
    """Where the package of ``spec`` appears in ``out`` once it is complete."""
    return _package_path(out, spec)


def beside(out: Path, spec: ExportSpec, what: str) -> Path:
    """A file beside the package: ``<name>.risk-report.json``, ``<name>.coupling-list.csv``."""
    return out / f"{spec.name}.{what}"


# -- dry run ------------------------------------------------------------------------------


def plan_export(inst: Installation, acronym: str, spec: ExportSpec, out: Path, *,
                sidecar: Path | None = None, k: int = DEFAULT_K
                ) -> tuple[ExportPlan, RiskReport]:
    """The plan and risk report without writing anything (``--dry-run``).

    One instance of each series is rewritten in memory: its changed tags (originals
    masked) and its quasi-identifiers, which feed the risk report as in a real run.
    """
    prepared = _prepare(inst, acronym, spec, Path(out),
                        Sidecar.read(sidecar) if sidecar else None, None)
    rewriter = Rewriter(prepared.rewrite)
    traits: dict[str, list[dict[str, str]]] = defaultdict(list)
    store = inst.settings.store_dir
    for series in prepared.plan.series:
        first = series.instances[0]
        before = read_instance((store / first.stored_path).read_bytes(), series.key)
        after = read_instance(write_instance(before), series.key)
        rewriter.apply(after, prepared.subjects[series.research_id])
        prepared.plan.changes[series.key] = _changes(before, after, prepared.scan)
        traits[series.participant].append(traits_of(after))
    return prepared.plan, _risk(prepared, traits, k)


def _changes(before: Any, after: Any, scan: ScanRules) -> list[TagChange]:
    from pydicom.datadict import keyword_for_tag

    from ..deid.encoding import TEXT_VRS, effective_vr, element_text

    changes = []
    for tag in sorted(set(before._dict) | set(after._dict)):
        if int(tag) >> 16 == 0x0002:
            continue
        old, new = before._dict.get(tag), after._dict.get(tag)
        vr = effective_vr(old if old is not None else new, int(tag))
        if vr not in TEXT_VRS or (old is not None and new is not None
                                  and old.value == new.value):
            continue
        old_text = element_text(old) if old is not None else "(absent)"
        new_text = element_text(new) if new is not None else "(removed)"
        if old_text == new_text:
            continue
        name = keyword_for_tag(int(tag)) or f"({int(tag) >> 16:04X},{int(tag) & 0xFFFF:04X})"
        # What links to the archive — UIDs, dates, names, the PatientID and the StudyID
        # (derived from the archive's StudyInstanceUID) — and any text the scan would find.
        if old is not None and (vr in ("UI", "DA", "DT", "PN")
                                or int(tag) in (0x00100020, 0x00200010)
                                or scan.identifies(name, vr, old_text)):
            old_text = mask(old_text)
        changes.append(TagChange(name, old_text, new_text))
    return changes


def _risk(prepared: _Prepared, traits: dict[str, list[dict[str, str]]], k: int) -> RiskReport:
    spec = prepared.spec
    # Columns that land in a DICOM trait (a birth date) are counted once, as that trait.
    in_dicom = {r.value for r in spec.tags if r.action is TagAction.FROM_SIDECAR
                and r.tag in _TRAIT_TAGS}
    per_participant = {
        participant: participant_traits(
            studies, {c: v for c, v in prepared.plan.added.get(participant, {}).items()
                      if c not in in_dicom})
        for participant, studies in traits.items()}
    return risk_report(per_participant, k)


# -- run ----------------------------------------------------------------------------------


@contextmanager
def _locked(work: Path) -> Iterator[None]:
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o700)
    with open(work / "lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ConflictError(f"{work}: another export of this spec is running") from exc
        yield


def _state(work: Path) -> dict[str, Any]:
    try:
        return json.loads((work / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def run_export(inst: Installation, acronym: str, spec: ExportSpec, out: Path, *,
               sidecar: Path | None = None, k: int = DEFAULT_K, workers: int | None = None,
               allow_findings: bool = False, progress: Progress | None = None,
               actor: str | None = None) -> ExportResult:
    """Export ``spec`` of project ``acronym`` into ``out``; resumes a killed run."""
    out = Path(out).absolute()  # a relative --out: pydicom gives the file-set absolute paths
    _check_outside(inst, out)
    target = _package_path(out, spec)
    work = out / f".{spec.name}.export-work"
    if target.exists():
        unrecorded = ""
        if work.is_dir():
            # Left by the run that made the package, killed just after: it holds that
            # run's key, which must not outlive it (a coupling list by another name).
            with suppress(ConflictError), _locked(work):
                shutil.rmtree(work, ignore_errors=True)
            with inst.db.session() as session:
                if session.scalar(select(ExportRun.id).where(
                        ExportRun.output == str(target)).limit(1)) is None:
                    unrecorded = ("; it has no export record, as the run that made it was "
                                  "killed as it finished: check it, or remove it and export "
                                  "again")
        raise ConflictError(f"{target} already exists (remove it, or choose another --out)"
                            + unrecorded)
    side = Sidecar.read(sidecar) if sidecar else None
    # Planned before the work folder is made: a spec, sidecar or layout problem leaves
    # nothing behind.
    state = _state(work)
    resume = state.get("spec_sha256") == spec.sha256
    run_key = bytes.fromhex(state["run_key"]) if resume and state.get("run_key") else None
    prepared = _prepare(inst, acronym, spec, out, side, run_key)
    with _locked(work):
        if _state(work) != state:
            raise ConflictError(f"{work}: another export of this spec ran meanwhile; rerun")
        if not resume or state.get("plan") != prepared.digest:
            for leftover in ("tree", "blobs", "done", "scratch", "package"):
                shutil.rmtree(work / leftover, ignore_errors=True)
            resume = False
        write_atomic(work / "state.json", json.dumps({
            "spec_sha256": spec.sha256, "plan": prepared.digest,
            "run_key": prepared.run_key.hex() if prepared.run_key else ""}).encode(), 0o600)
        if prepared.new_ids:
            _store_ids(inst, prepared)
        results, resumed = _export_series(inst, prepared, work, workers, progress)
        return _finish(inst, prepared, work, out, results, resumed, k, allow_findings,
                       actor or _os_user(), side is not None,
                       workers or inst.settings.worker_count)


def _check_outside(inst: Installation, out: Path) -> None:
    """A package inside the store, the quarantine or the temporary folder would be taken
    for their contents (the store's files are the archive's alone, and the temporary
    folder is cleaned), and one in the data folder itself would sit beside the index and
    the installation's key."""
    where = out.resolve()
    if where == inst.settings.home.resolve():
        raise InvalidInputError(f"{out}: --out is the data folder (RPACS_HOME) itself; "
                                "choose a folder outside it")
    for name, folder in (("store", inst.settings.store_dir),
                         ("quarantine", inst.settings.quarantine_dir),
                         ("temporary folder", inst.settings.tmp_dir)):
        folder = folder.resolve()
        if where.is_relative_to(folder):
            raise InvalidInputError(f"{out}: --out is inside the archive's {name} ({folder}); "
                                    "choose a folder outside it")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def _store_ids(inst: Installation, prepared: _Prepared) -> None:
    with inst.db.session() as session:
        for research_id, export_id in sorted(prepared.new_ids.items()):
            session.add(ExportId(project_id=prepared.project.id, spec_name=prepared.spec.name,
                                 research_id=research_id, export_id=export_id))


def _parts(series: PlannedSeries, dicom: bool) -> list[SeriesPart]:
    """A series cut into parts of at most :data:`PART_SIZE` instances (one part when only
    NIfTI is made: that is one dcm2niix run)."""
    size = len(series.instances)
    if not dicom:
        return [SeriesPart(series, 0, size)]
    return [SeriesPart(series, start, min(start + PART_SIZE, size))
            for start in range(0, size, PART_SIZE)]


def _export_series(inst: Installation, prepared: _Prepared, work: Path, workers: int | None,
                   progress: Progress | None) -> tuple[list[SeriesResult], int]:
    """Every series exported (or found done by an earlier run): one merged result each."""
    done_dir = work / "done"
    done_dir.mkdir(parents=True, exist_ok=True)
    spec = prepared.spec
    dicom = Format.DICOM in spec.formats
    results: list[SeriesResult] = []
    remaining: list[SeriesPart] = []
    for series in prepared.plan.series:
        for part in _parts(series, dicom):
            record = done_record(done_dir, part.key)
            if record.exists():
                results.append(SeriesResult.from_dict(json.loads(record.read_text())))
            else:
                remaining.append(part)
    resumed = len({r.series_key for r in results})
    total = prepared.plan.n_instances
    done = total - sum(p.size for p in remaining)
    series_work = SeriesWork(
        store_root=inst.settings.store_dir, tree=work / "tree", done_dir=done_dir,
        scratch=work / "scratch", rewrite=prepared.rewrite, scan=prepared.scan,
        dicom=dicom, nifti=Format.NIFTI in spec.formats, subjects=prepared.subjects,
        blobs=_blobs(work, spec))
    if series_work.blobs is not None:
        series_work.blobs.mkdir(parents=True, exist_ok=True)
    sizes = {p.key: p.size for p in remaining}
    for result in _run(series_work, remaining, workers or inst.settings.worker_count):
        results.append(result)
        done += sizes[result.key]
        if progress is not None:
            progress(done, total)
    by_series: dict[str, list[SeriesResult]] = defaultdict(list)
    for result in results:
        by_series[result.series_key].append(result)
    return [SeriesResult.merged(parts) for parts in by_series.values()], resumed


def _blobs(work: Path, spec: ExportSpec) -> Path | None:
    """The folder of the parts' blobs when the DICOM files go into zips (None: they are
    files of the package's tree)."""
    zipped = spec.package in (PackageKind.ZIP, PackageKind.ZIP_PER_PARTICIPANT,
                              PackageKind.ZIP_PER_STUDY)
    return work / "blobs" if zipped and not spec.dicomdir else None


def _run(work: SeriesWork, remaining: list[SeriesPart], workers: int) -> Iterator[SeriesResult]:
    # The longest work first — the parts that also convert a series to NIfTI, then the
    # biggest — so that no worker is left with a long one at the end.
    ordered = sorted(remaining, key=lambda p: (not (work.nifti and p.start == 0), -p.size))
    if workers <= 1 or len(ordered) <= 1:
        init_worker(work)
        for part in ordered:
            yield export_part(part)
        return
    # fork, as the import does: workers inherit the keys without them passing through a pipe.
    context = multiprocessing.get_context("fork")
    with context.Pool(min(workers, len(ordered)), initializer=init_worker,
                      initargs=(work, True)) as pool:
        yield from pool.imap_unordered(export_part, ordered)


def _finish(inst: Installation, prepared: _Prepared, work: Path, out: Path,
            results: list[SeriesResult], resumed: int, k: int, allow_findings: bool,
            actor: str, with_sidecar: bool, workers: int) -> ExportResult:
    spec, plan = prepared.spec, prepared.plan
    tree = work / "tree"
    tree.mkdir(parents=True, exist_ok=True)
    rows = [row for r in results for row in r.rows]
    if spec.dicomdir:
        # A UID of this plan's own: keyed like the others with new IDs; with research IDs
        # kept there is no key, and the seed alone is not a UID.
        seed = f"dicomdir/{prepared.digest}"
        fileset_uid = (prepared.rewrite.uid(seed) if prepared.rewrite.uid_key is not None
                       else uid_for(prepared.digest.encode(), "dicomdir"))
        moved = write_dicomdir(tree, [tree / r.path for r in rows], fileset_uid)
        rows = [replace(r, path=moved[tree / r.path].relative_to(tree).as_posix(),
                        sha256=sha256_file(moved[tree / r.path])) for r in rows]
        rows.append(replace(rows[0], path="DICOMDIR", modality="", series="",
                            sha256=sha256_file(tree / "DICOMDIR")))
        # The directory records repeat the instances' values: scanned like them.
        directory = dcmread(tree / "DICOMDIR")
        dicomdir_findings = InstanceScan(prepared.scan).scan(directory, "DICOMDIR", (), ())
    zipped = spec.package in (PackageKind.ZIP_PER_PARTICIPANT, PackageKind.ZIP_PER_STUDY)
    made_on = _made_on(inst, prepared)
    texts = {
        MANIFEST: manifest_text(rows, zipped),
        PARTICIPANTS: participants_text(plan.participants.values(), spec.sidecar_columns,
                                        plan.added),
        README: readme_text(prepared, made_on, len(rows), results),
    }
    findings = [f for r in results for f in r.findings]
    if spec.dicomdir:
        findings.extend(dicomdir_findings)
    for name, text in texts.items():
        findings.extend(scan_text(name, text, prepared.scan, frozenset()))
    # A path quotes the data its layout is made of: what a report names is masked too.
    # In path order, as the workers' order is not: the same export gives the same report.
    findings = sorted((replace(f, file=prepared.scan.masked_path(f.file)) for f in findings),
                      key=lambda f: (f.file, f.tag, f.reason, f.masked))
    traits: dict[str, list[dict[str, str]]] = defaultdict(list)
    for series, result in _paired(plan.series, results):
        traits[series.participant].append(result.traits)
    risk = _risk(prepared, traits, k)
    report = beside(out, spec, "scan-findings.json")
    if findings:
        # Also when allowed: the record of what was let through.
        write_atomic(report, json.dumps([f.__dict__ for f in findings], indent=2).encode(),
                     0o600)
    else:
        report.unlink(missing_ok=True)  # an earlier run's, which is not this package's
    if findings and not allow_findings:
        shutil.rmtree(work, ignore_errors=True)
        with inst.db.session() as session:
            _audit(session, prepared, actor, "export.refused", out, len(rows), len(findings))
        raise ResidualPhiError(
            f"the scan found {len(findings)} identifying value(s) in the package, which was "
            f"removed; first: {_finding_text(findings[0])}; all in {report}")
    target = _package_path(out, spec)
    # What goes beside the package is written first: once the package is there, so is
    # its coupling list.
    write_atomic(beside(out, spec, "risk-report.json"),
                 (json.dumps(risk.as_dict(), indent=2) + "\n").encode(), 0o600)
    coupling = ""
    if spec.random_identity and spec.identity.coupling_list:
        path = beside(out, spec, "coupling-list.csv")
        lines = ["research_id,export_id", *(f"{r},{e}" for r, e in
                                            sorted(plan.participants.items()))]
        write_atomic(path, ("\n".join(lines) + "\n").encode(), 0o600)
        coupling = str(path)
    sources: dict[str, Path | Span] = {r.path: tree / r.path for r in rows}
    blobs = _blobs(work, spec)
    if blobs is not None:
        sources.update({path: Span(blobs / name, offset, size, crc) for r in results
                        for path, (name, offset, size, crc) in r.spans.items()})
    built = _assemble(spec, work, tree, texts, rows, sources, target, workers)
    placed = False
    try:
        with inst.db.session() as session:  # the export's record and its audit event
            session.add(ExportRun(project_id=prepared.project.id, spec_name=spec.name,
                                  spec_sha256=spec.sha256, content_sha256=prepared.digest,
                                  made_on=made_on, output=str(target), n_files=len(rows)))
            _audit(session, prepared, actor, "export", target, len(rows), len(findings),
                   sidecar=with_sidecar)
            session.flush()
            # The package appears as the records are committed: a failed rename rolls
            # them back, a failed commit takes the package back, and a kill can fall
            # only in the moment between the two.
            os.replace(built, target)
            placed = True
    except BaseException:
        if placed:
            os.replace(target, built)
        raise
    # Only then the work folder (with the run's key, when no coupling list is kept): a
    # kill before this leaves it to the next run of the spec (see run_export).
    shutil.rmtree(work, ignore_errors=True)
    return ExportResult(
        package=str(target), files=len(rows), participants=len(plan.participants),
        series=len(plan.series), instances=plan.n_instances,
        nifti_failed=sorted(f"{s.participant} {s.event} {s.modality} series "
                            f"{s.series_number}: {r.nifti_error}"
                            for s, r in _paired(plan.series, results) if r.nifti_error),
        findings=findings, risk=risk.as_dict(), coupling_list=coupling,
        risk_report=str(beside(out, spec, "risk-report.json")), resumed=resumed)


def _paired(series: list[PlannedSeries], results: list[SeriesResult]
            ) -> list[tuple[PlannedSeries, SeriesResult]]:
    by_key = {r.key: r for r in results}
    return [(s, by_key[s.key]) for s in series if s.key in by_key]


def _finding_text(finding: Finding) -> str:
    return f"{finding.file} {finding.tag}: {finding.reason} ({finding.masked})"


def _made_on(inst: Installation, prepared: _Prepared) -> dt.date:
    """The date of the first run of this spec on this data: reruns stay byte-identical."""
    with inst.db.session() as session:
        first = session.scalar(
            select(ExportRun.made_on).where(
                ExportRun.project_id == prepared.project.id,
                ExportRun.spec_name == prepared.spec.name,
                ExportRun.content_sha256 == prepared.digest,
            ).order_by(ExportRun.made_on).limit(1))
    return first or dt.date.today()


def _assemble(spec: ExportSpec, work: Path, tree: Path, texts: dict[str, str],
              rows: list[Any], sources: dict[str, Path | Span], target: Path,
              workers: int) -> Path:
    """Lay the finished files out as the package kind says, in the work folder; the
    package, ready to be renamed into place (``sources``: where each row's bytes are)."""
    if spec.package is PackageKind.DIRECTORY:
        for name, text in texts.items():
            write_atomic(tree / name, text.encode("utf-8"))
        return tree
    if spec.package is PackageKind.ZIP:
        for name, text in texts.items():
            write_atomic(tree / name, text.encode("utf-8"))
        entries: dict[str, Path | Span] = {r.path: sources[r.path] for r in rows}
        entries.update({name: tree / name for name in texts})
        zip_path = work / target.name
        write_zip(zip_path, entries)
        return zip_path
    package = work / "package"
    shutil.rmtree(package, ignore_errors=True)
    package.mkdir()
    containers: dict[str, dict[str, Path | Span]] = defaultdict(dict)
    for row in rows:
        containers[row.container][row.path] = sources[row.path]
    jobs = [(package / container, entries) for container, entries in sorted(containers.items())]
    if workers > 1 and len(jobs) > 1:
        # One zip per process: the copying and CRCs of different zips run side by side.
        context = multiprocessing.get_context("fork")
        with context.Pool(min(workers, len(jobs))) as pool:
            pool.starmap(write_zip, jobs)
    else:
        for target_zip, entries in jobs:
            write_zip(target_zip, entries)
    for name, text in texts.items():
        write_atomic(package / name, text.encode("utf-8"))
    return package


def _audit(session: Session, prepared: _Prepared, actor: str, action: str, target: Path,
           files: int, findings: int, **details: Any) -> None:
    """The export's audit event, in the caller's transaction."""
    plan = prepared.plan
    record_event(session, actor[:100], action, prepared.project.id, files,
                 spec=prepared.spec.name, spec_sha256=prepared.spec.sha256, output=str(target),
                 participants=len(plan.participants), series=len(plan.series),
                 instances=plan.n_instances, files=files, findings=findings, **details)


def readme_text(prepared: _Prepared, made_on: dt.date, files: int,
                results: list[SeriesResult]) -> str:
    """What the receiver has: which data, what was done to it, and by which rules."""
    spec, plan, project = prepared.spec, prepared.plan, prepared.project
    profile = deid_profile(project)
    identity = spec.identity
    if spec.random_identity:
        who = (f"Participants have new IDs drawn at random from the pattern "
               f"{identity.pattern}; every UID was replaced again with a key of this export, "
               "so the data cannot be linked to the research archive. ")
        who += ("The data manager keeps a coupling list (research ID -> export ID) outside "
                "this package." if identity.coupling_list else
                "No coupling list exists anywhere: this is an anonymization.")
    else:
        who = "Participants carry their research IDs; UIDs are those of the research archive."
    dates = {
        DatesMode.KEEP: "Dates are as in the research archive (already shifted there).",
        DatesMode.SHIFT: "Dates were moved by one further offset for this export, the same "
                         "for every participant, so intervals (and ages) stay right.",
        DatesMode.REMOVE: "Dates were removed (emptied).",
    }[spec.dates]
    rules = [f"  - {r.keyword}: {_rule_text(r)}" for r in spec.tags] or ["  (none)"]
    options = sorted(o.meaning for o in profile.options)
    failed = sum(1 for r in results if r.nifti_error)
    lines = [
        f"rpacs export package: {spec.name}",
        *([spec.description] if spec.description else []),
        "",
        f"Project:          {project.acronym}",
        f"Made on:          {made_on.isoformat()}",
        # Without a coupling list nothing may be computed from the archive's identifiers,
        # and a spec's text can name them (select: participants, a study UID).
        f"Spec:             {spec.name}" + ("" if prepared.run_key is not None
                                             else f" (SHA-256 {spec.sha256})"),
        f"Contents:         {len(plan.participants)} participant(s), {len(plan.series)} "
        f"series, {plan.n_instances} DICOM instance(s) read; {files} file(s) in the package",
        f"Formats:          {', '.join(f.value for f in spec.formats)}; package: "
        f"{spec.package.value}" + (" with DICOMDIR" if spec.dicomdir else ""),
        *([f"NIfTI:            {failed} series could not be converted (see manifest.csv)"]
          if failed else []),
        "",
        "De-identification in the research archive: DICOM PS3.15 Basic Application Level "
        "Confidentiality Profile" + (f" with the options {'; '.join(options)}" if options
                                     else "") +
        (f", and {len(profile.overrides)} project-specific tag rule(s)."
         if profile.overrides else "."),
        "",
        who,
        dates,
        "Tag rules of this export:",
        *rules,
        "",
        f"{MANIFEST}: one row per file (path, participant, event, modality, series, SHA-256).",
        f"{PARTICIPANTS}: the participants' IDs in this package"
        + (f" and the columns {', '.join(spec.sidecar_columns)}." if spec.sidecar_columns
           else "."),
    ]
    return "\n".join(_wrap(line) for line in lines) + "\n"


def _rule_text(rule: Any) -> str:
    if rule.action is TagAction.CLEAN:
        return "cleaned (trimmed, spaces collapsed, ASCII only)"
    if rule.action is TagAction.REPLACE:
        return f"'{rule.value}' replaced by '{rule.replacement}'"
    if rule.action is TagAction.FROM_SIDECAR:
        return f"added from the data manager's table (column {rule.value})"
    if rule.action is TagAction.REMOVE:
        return "removed"
    return f"set to '{rule.value}'"


def _wrap(line: str, width: int = 88) -> str:
    import textwrap

    if len(line) <= width:
        return line
    return "\n".join(textwrap.wrap(line, width, subsequent_indent="  " if line.startswith(
        "  ") else ""))


__all__ = ["beside", "package_path", "plan_export", "readme_text", "run_export"]
