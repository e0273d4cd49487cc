"""The validated description of a project, as given on the command line or in a form."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from ..errors import InvalidInputError

ACRONYM = re.compile(r"[A-Za-z0-9_-]{5,20}")
EVENT = re.compile(r"[A-Za-z0-9_-]{1,64}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
END_ACTIONS = ("delete", "anonymize")
DATE_SHIFTS = ("per-project", "per-participant")
#: Column widths of the index (PostgreSQL enforces them; SQLite would silently accept more).
MAX_LENGTHS = {"--rek": 64, "--pi-name": 200, "--pi-email": 254, "--participant-pattern": 200}


def _date(value: dt.date | str, option: str, problems: list[str]) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    # Exactly YYYY-MM-DD: Python also reads 20250101 and 2025-W01-1, which a person who
    # typed them may well have meant otherwise.
    try:
        if not _ISO_DATE.fullmatch(str(value)):
            raise ValueError(value)
        return dt.date.fromisoformat(str(value))
    except ValueError:
        problems.append(f"{option}: '{value}' is not a date (YYYY-MM-DD)")
        return None


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _pattern_problem(pattern: str) -> str | None:
    if not pattern.strip():
        return "a regular expression is required"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"not a valid regular expression ({exc})"
    return None


@dataclass(frozen=True)
class ProjectSpec:
    """What a new project needs; :meth:`validated` reports every problem at once.

    The participant pattern is matched against the whole research ID (``re.fullmatch``), so
    ``BICAM-\\d{4}`` and ``^BICAM-\\d{4}$`` mean the same: a pattern can never let an ID
    through because it happens to contain a valid ID somewhere inside it.

    Messages name the command-line option at fault (``--pi-email: ...``), which a form can
    map back to its field.
    """

    acronym: str
    rek: str
    pi_name: str
    pi_email: str
    start_date: dt.date | str
    end_date: dt.date | str
    participant_pattern: str
    events: list[str] = field(default_factory=lambda: ["Event01"])
    end_action: str = "anonymize"
    date_shift: str = "per-project"
    #: YAML text of a de-identification profile; ``None`` means the rpacs default.
    deid_profile: str | None = None

    def validated(self) -> ProjectSpec:
        """A copy with dates parsed and text trimmed, or InvalidInputError with every problem."""
        problems: list[str] = []
        if not ACRONYM.fullmatch(self.acronym or ""):
            problems.append(
                f"--acronym: '{self.acronym}' must be 5-20 characters of letters, digits, "
                "'-' or '_'"
            )
        if not (self.rek or "").strip():
            problems.append("--rek: the ethics approval number is required")
        if not (self.pi_name or "").strip():
            problems.append("--pi-name: the PI's name is required")
        if not EMAIL.fullmatch((self.pi_email or "").strip()):
            problems.append(f"--pi-email: '{self.pi_email}' is not an e-mail address")
        values = {"--rek": self.rek, "--pi-name": self.pi_name, "--pi-email": self.pi_email,
                  "--participant-pattern": self.participant_pattern}
        for option, limit in MAX_LENGTHS.items():
            if len((values[option] or "").strip()) > limit:
                problems.append(f"{option}: at most {limit} characters")
        start = _date(self.start_date, "--start", problems)
        end = _date(self.end_date, "--end", problems)
        if start and end and end <= start:
            problems.append(
                f"--end: the end date {end.isoformat()} must be after the start date "
                f"{start.isoformat()}"
            )
        pattern_problem = _pattern_problem(self.participant_pattern or "")
        if pattern_problem:
            problems.append(f"--participant-pattern: {pattern_problem}")
        events = [e.strip() for e in self.events or []]
        if not events:
            problems.append("--events: at least one event name is required")
        for event in dict.fromkeys(events):  # each distinct name judged once
            if not event:
                problems.append("--events: an event name is empty (check the commas)")
            elif not EVENT.fullmatch(event):
                problems.append(
                    f"--events: '{event}' must be 1-64 letters, digits, '-' or '_'"
                )
        # Unique whatever the letter case: an export names folders by event, and Windows and
        # macOS would take Baseline and baseline for one folder.
        folded = [e.casefold() for e in events]
        duplicates = sorted({e for e in events if e and folded.count(e.casefold()) > 1})
        if duplicates:
            problems.append(f"--events: event names must be unique, whatever the letter case "
                            f"({', '.join(duplicates)})")
        if self.end_action not in END_ACTIONS:
            problems.append(
                f"--end-action: '{self.end_action}' is not one of {', '.join(END_ACTIONS)}"
            )
        if self.date_shift not in DATE_SHIFTS:
            problems.append(
                f"--date-shift: '{self.date_shift}' is not one of {', '.join(DATE_SHIFTS)}"
            )
        if self.deid_profile is not None:
            from ..deid import Profile  # pydicom is loaded only when a profile is given

            try:
                Profile.from_yaml(self.deid_profile)
            except InvalidInputError as exc:
                problems.extend(f"--deid-profile: {p}" for p in exc.problems)
        if problems:
            raise InvalidInputError(problems)
        assert start is not None and end is not None
        return ProjectSpec(
            acronym=self.acronym,
            rek=self.rek.strip(),
            pi_name=self.pi_name.strip(),
            pi_email=self.pi_email.strip(),
            start_date=start,
            end_date=end,
            participant_pattern=self.participant_pattern,
            events=events,
            end_action=self.end_action,
            date_shift=self.date_shift,
            deid_profile=self.deid_profile if (self.deid_profile or "").strip() else None,
        )
