"""The validated description of a project, as given on the command line or in a form."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from ..errors import InvalidInputError

ACRONYM = re.compile(r"^[A-Za-z0-9_-]{5,20}$")
EVENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
END_ACTIONS = ("delete", "anonymize")
DATE_SHIFTS = ("per-project", "per-participant")


def _date(value: dt.date | str, option: str, problems: list[str]) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        problems.append(f"{option}: '{value}' is not a date (YYYY-MM-DD)")
        return None


@dataclass(frozen=True)
class ProjectSpec:
    """What a new project needs; :meth:`validated` reports every problem at once.

    The participant pattern is matched against the whole research ID (``re.fullmatch``), so
    ``BICAM-\\d{4}`` and ``^BICAM-\\d{4}$`` mean the same.
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
    deid_profile: str | None = None

    def validated(self) -> ProjectSpec:
        problems: list[str] = []
        if not ACRONYM.fullmatch(self.acronym or ""):
            problems.append(
                "--acronym: must be 5-20 characters of letters, digits, '-' or '_'"
            )
        if not (self.rek or "").strip():
            problems.append("--rek: the ethics approval number is required")
        if not (self.pi_name or "").strip():
            problems.append("--pi-name: the PI's name is required")
        if not EMAIL.fullmatch(self.pi_email or ""):
            problems.append(f"--pi-email: '{self.pi_email}' is not an e-mail address")
        start = _date(self.start_date, "--start", problems)
        end = _date(self.end_date, "--end", problems)
        if start and end and end <= start:
            problems.append("--end: the end date must be after the start date")
        try:
            re.compile(self.participant_pattern or "")
            if not self.participant_pattern:
                problems.append("--participant-pattern: a regular expression is required")
        except re.error as exc:
            problems.append(f"--participant-pattern: not a valid regular expression ({exc})")
        events = [e.strip() for e in self.events]
        if not events:
            problems.append("--events: at least one event name is required")
        for event in events:
            if not EVENT.fullmatch(event):
                problems.append(
                    f"--events: '{event}' must be 1-64 letters, digits, '-' or '_'"
                )
        if len(set(events)) != len(events):
            problems.append("--events: event names must be unique")
        if self.end_action not in END_ACTIONS:
            problems.append(f"--end-action: must be one of {', '.join(END_ACTIONS)}")
        if self.date_shift not in DATE_SHIFTS:
            problems.append(f"--date-shift: must be one of {', '.join(DATE_SHIFTS)}")
        if self.deid_profile:
            from ..deid import Profile

            try:
                Profile.from_yaml(self.deid_profile)
            except InvalidInputError as exc:
                problems.extend(f"--deid-profile: {p}" for p in exc.problems)
        if problems:
            raise InvalidInputError(problems)
        return ProjectSpec(
            acronym=self.acronym,
            rek=self.rek.strip(),
            pi_name=self.pi_name.strip(),
            pi_email=self.pi_email.strip(),
            start_date=start,  # type: ignore[arg-type]
            end_date=end,  # type: ignore[arg-type]
            participant_pattern=self.participant_pattern,
            events=events,
            end_action=self.end_action,
            date_shift=self.date_shift,
            deid_profile=self.deid_profile,
        )
