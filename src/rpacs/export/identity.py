"""Who a participant is in a package: keys, export IDs and the sidecar of added columns.

The spec key (new UIDs, export IDs, the extra date offset) is HMAC(project secret, spec
name): a rerun of a spec gives the same IDs and UIDs, and nobody without the project's
secret can compute them. A spec without a coupling list gets a fresh random key per run
instead, never stored: otherwise the archive could recompute the link it promised not to
keep.

Export IDs are drawn from the spec's pattern "at random without repeats", stably: a
participant's candidate numbers are HMAC(spec key, research ID, attempt) modulo the
pattern's capacity, taken in turn until one is free. Specs with a coupling list store
each assignment (table ``export_ids``), so a participant added later gets a free number
and nobody else's ID changes; collisions are resolved in the order of research IDs.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInputError
from .spec import IdentityRule


def spec_key(project_secret: bytes, spec_name: str) -> bytes:
    """The key of one export spec of a project (32 bytes)."""
    return hmac.new(project_secret, b"export-spec:" + spec_name.encode("utf-8"),
                    hashlib.sha256).digest()


def draw_ids(key: bytes, rule: IdentityRule, research_ids: Iterable[str],
             taken: Mapping[str, str], forbidden: frozenset[str]) -> dict[str, str]:
    """Export IDs for ``research_ids``: the ``taken`` ones as stored, new ones drawn.

    ``forbidden`` holds IDs that must never be given out (the project's research IDs, so
    that an export ID can never be mistaken for, or found as, a research ID).
    """
    ids = dict(taken)
    used = set(taken.values()) | forbidden
    capacity = rule.capacity
    wanted = sorted(set(research_ids))
    if len(set(wanted) | set(ids)) > capacity // 2:
        raise InvalidInputError(
            f"identity.pattern: '{rule.pattern}' has {capacity} IDs, too few to draw "
            f"{len(wanted)} at random (use more digits)")
    for research_id in wanted:
        if research_id in ids:
            continue
        attempt = 0
        while True:
            digest = hmac.new(key, f"{research_id}\x00{attempt}".encode(), hashlib.sha256)
            candidate = rule.pattern.format(n=int.from_bytes(digest.digest()[:8]) % capacity)
            if candidate not in used:
                break
            attempt += 1
        ids[research_id] = candidate
        used.add(candidate)
    return {r: ids[r] for r in wanted}


@dataclass(frozen=True)
class Sidecar:
    """The ``--sidecar`` CSV: first column the research ID, then named columns."""

    columns: tuple[str, ...]
    rows: dict[str, dict[str, str]]

    @classmethod
    def read(cls, path: Path) -> Sidecar:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"--sidecar: cannot read {path} ({exc})") from exc
        try:
            dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        reader = csv.reader(io.StringIO(text), dialect)
        header = next(reader, None)
        if not header or len(header) < 2:
            raise InvalidInputError(f"--sidecar: {path.name} needs a header row: the "
                                    "research ID, then the columns the spec adds")
        columns = tuple(h.strip() for h in header)
        rows: dict[str, dict[str, str]] = {}
        lines: dict[str, list[int]] = {}
        for number, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                raise InvalidInputError(f"--sidecar: {path.name} line {number} has {len(row)} "
                                        f"cells, the header {len(columns)}")
            research_id = row[0].strip()
            lines.setdefault(research_id, []).append(number)
            rows[research_id] = {c: v.strip() for c, v in zip(columns[1:], row[1:],
                                                               strict=True)}
        # Two rows for one participant: which one holds the truth is not for rpacs to guess.
        twice = [f"{r} (lines {', '.join(map(str, n))})" for r, n in lines.items() if len(n) > 1]
        if twice:
            raise InvalidInputError(f"--sidecar: {path.name} has more than one row for "
                                    f"{len(twice)} participant(s): {'; '.join(twice)}")
        return cls(columns[1:], rows)

    def check(self, columns: Iterable[str], research_ids: Iterable[str]) -> None:
        """Every column the spec reads exists and every exported participant has a row."""
        problems = [f"--sidecar: no column '{c}' (the spec's from_sidecar; columns: "
                    f"{', '.join(self.columns)})" for c in columns if c not in self.columns]
        missing = sorted(set(research_ids) - set(self.rows))
        if missing:
            problems.append(f"--sidecar: no row for {len(missing)} exported participant(s): "
                            f"{', '.join(missing)}")
        if problems:
            raise InvalidInputError(problems)


def parse_date(text: str) -> dt.date | None:
    """YYYY-MM-DD, YYYYMMDD or DD.MM.YYYY; None when it is none of these."""
    text = text.strip()
    for fmt in ("%Y-%m-%d", "%Y%m%d", "%d.%m.%Y"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None
