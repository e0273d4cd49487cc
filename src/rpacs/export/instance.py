"""One stored instance made the package's: rewritten, written and scanned.

Two paths give the same result. The reference path, :func:`export_instance`, reads the file
into a pydicom data set (:func:`~rpacs.deid.read_instance`), changes it
(:meth:`Rewriter.apply`), writes it (:func:`~rpacs.deid.write_instance`) and scans it
(:meth:`InstanceScan.scan`). The byte path, :func:`export_raw`, takes the common case — a
plain little-endian Part 10 file, which is what the archive stores — on the file's bytes:
the top-level elements are cut out with :func:`~rpacs.deid.parse_plain`, the rewriter and
the scanner answer for each element from their memos (keyed by tag, VR and bytes: the
instances of a series share most of their header), and the file is written as runs of the
input's bytes with the changed elements spliced in (:func:`~rpacs.deid.write_plain`), so
the pixel data is copied once, as one slice. Anything unusual — big endian, undefined
lengths, a sequence not memoised yet, a rule that writes a binary value — makes the byte
path decline, and the reference path does the work. A differential test holds the two to
the same bytes, findings and traits.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pydicom import Dataset
from pydicom.tag import BaseTag

from ..deid import (
    PlainFile,
    parse_plain,
    quiet,  # noqa: F401  (pydicom's value warnings off)
    read_instance,
    write_instance,
    write_plain,
)
from ..deid.encoding import element_text, vr_acted_on
from .content import Finding
from .rewrite import RawChanges, Rewriter, Subject
from .scan import SCANNED_VRS, InstanceScan

#: The quasi-identifiers of the risk report: name -> tag.
TRAITS = {"sex": 0x00100040, "age": 0x00101010, "birth_date": 0x00100030,
          "study_date": 0x00080020}
_MEDIA_SOP_CLASS = BaseTag(0x00020002)
_PIXEL_DATA = 0x7FE00010


def traits_of(ds: Dataset) -> dict[str, str]:
    """The quasi-identifiers of an exported instance (empty values left out)."""
    values = {name: element_text(ds._dict.get(BaseTag(tag))) for name, tag in TRAITS.items()}
    return {k: v for k, v in values.items() if v}


@dataclass(frozen=True)
class ExportedInstance:
    """An instance as the package holds it, what the scan found in it, and its traits."""

    #: The file's bytes as runs, one after another (see :func:`~rpacs.deid.write_plain`):
    #: written and hashed run by run, never joined.
    runs: Sequence[bytes | memoryview]
    findings: list[Finding]
    traits: dict[str, str]
    #: The input as the byte path cut it (None on the reference path): handed to the next
    #: instance of the series, which mostly lies out alike (see :func:`parse_plain`).
    plain: PlainFile | None = None

    @property
    def data(self) -> bytes:
        """The file's bytes, joined."""
        return b"".join(self.runs)

    @property
    def size(self) -> int:
        return sum(len(run) for run in self.runs)


def export_instance(data: bytes, source: str, file: str, rewriter: Rewriter,
                    scanner: InstanceScan, subject: Subject, series_uids: tuple[str, ...],
                    *, scan: bool = True) -> ExportedInstance:
    """The reference path (``source`` names the file in errors; ``file`` is its path in
    the package; ``series_uids`` the archive UIDs of its study and series)."""
    ds = read_instance(data, source)
    originals = rewriter.apply(ds, subject)
    out = write_instance(ds)
    findings: list[Finding] = []
    if scan:
        archive_uids = originals.uids | set(series_uids)
        # The data set just serialised holds exactly the values written (unchanged
        # elements as the raw bytes copied): it is scanned without reading it back.
        findings = scanner.scan(ds, file, archive_uids, originals.dates)
        # Byte search only when the elements showed nothing (else it would repeat them).
        findings = findings or scanner.scan_bytes(out, file, archive_uids,
                                                  subject.research_id)
    return ExportedInstance((out,), findings, traits_of(ds))


def export_raw(data: bytes, file: str, rewriter: Rewriter, scanner: InstanceScan,
               subject: Subject, series_uids: tuple[str, ...],
               like: ExportedInstance | None = None) -> ExportedInstance | None:
    """The byte path: :func:`export_instance`'s result, or None where it declines
    (``like``: the series' previous instance, whose layout this one most likely shares).

    None also when anything goes wrong on the way: the reference path then does the same
    work and reports the problem as it always does.
    """
    plain = parse_plain(data, like.plain if like is not None else None)
    if plain is None:
        return None
    try:
        changes = rewriter.apply_raw(data, plain, subject)
        if changes is None or _MEDIA_SOP_CLASS not in changes.meta:
            return None  # (write_instance fills a missing SOP class in from the data set)
        removed = changes.removed | changes.dropped if changes.dropped else changes.removed
        out = write_plain(data, plain, removed, changes.overlay, changes.meta)
        archive_uids = changes.originals.uids | set(series_uids)
        findings = scanner.scan_raw(_written(data, plain, changes, SCANNED_VRS), changes.codec,
                                    plain.implicit, file, archive_uids,
                                    changes.originals.dates)
        if findings is None:
            return None
        findings = findings or scanner.scan_bytes(_without_pixels(out, plain, changes), file,
                                                  archive_uids, subject.research_id)
        traits = {name: _text(data, plain, changes, tag) for name, tag in TRAITS.items()}
        return ExportedInstance(out, findings, {k: v for k, v in traits.items() if v}, plain)
    except Exception:
        return None


def _without_pixels(runs: list[bytes | memoryview], plain: PlainFile, changes: RawChanges
                    ) -> bytes:
    """The written file (given as its runs) but the value of its Pixel Data when that is
    the last element and copied unchanged from the archive: the byte search looks for the
    archive's UIDs and the research ID, which rpacs wrote into headers, never into pixels,
    so in 100 KB of pixels it could only meet a coincidence, at most of the search's cost."""
    number, _, _, start, end = plain.elements[-1]
    if (number != _PIXEL_DATA or number in changes.overlay or number in changes.removed
            or any(tag > number for tag in changes.added)):
        return b"".join(runs)
    pixels, last = end - start, runs[-1]
    if len(last) >= pixels:  # the last run ends with them, as a rule
        return b"".join((*runs[:-1], last[:len(last) - pixels]))
    out = b"".join(runs)
    return out[:len(out) - pixels]


def _written(data: bytes, plain: PlainFile, changes: RawChanges, vrs: frozenset[str]
             ) -> Iterator[tuple[int, str, bytes]]:
    """The written data set's non-empty elements of ``vrs`` in its order — the file's, then
    the added ones — as (tag, VR acted on, value)."""
    overlay, removed = changes.overlay, changes.removed
    for (number, _, _, start, end), vr in zip(plain.elements, changes.vrs, strict=True):
        if vr not in vrs or number in removed:
            continue
        element = overlay.get(number)
        value = data[start:end] if element is None else element.value
        if value:
            yield number, vr, value
    for number in changes.added:
        element = overlay[number]
        vr = element.VR
        if vr is None or vr == "UN" or len(vr) != 2:
            vr = vr_acted_on(vr, number)
        if vr in vrs and element.value:
            yield number, vr, element.value


def _text(data: bytes, plain: PlainFile, changes: RawChanges, tag: int) -> str:
    """A written element's text, as :func:`element_text` reads it ("" when absent)."""
    element = changes.overlay.get(tag)
    if element is not None:
        return element_text(element)
    i = plain.index_of.get(tag)
    if i is None or tag in changes.removed:
        return ""
    _, _, _, start, end = plain.elements[i]
    return data[start:end].decode("latin-1").strip(" \x00")
