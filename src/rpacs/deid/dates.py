"""Date shifting: one keyed offset per project (or per participant), times untouched.

Intervals between a participant's dates are kept, which longitudinal research needs, while
the calendar dates move by an offset only the project's secret knows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

#: Dates move back by 1 to 10 years: far enough not to be recognised, and never into the
#: future, where they would look like errors.
MIN_SHIFT_DAYS = 365
MAX_SHIFT_DAYS = 3650


def date_offset_days(secret: bytes, participant_id: str | None = None) -> int:
    """The (negative) number of days dates move, derived from the secret.

    ``participant_id=None`` gives the project's one offset; a participant ID gives that
    participant's own offset.
    """
    label = b"date-offset" if participant_id is None else b"date-offset:" + participant_id.encode()
    digest = hmac.new(secret, label, hashlib.sha256).digest()
    span = MAX_SHIFT_DAYS - MIN_SHIFT_DAYS + 1
    return -(MIN_SHIFT_DAYS + int.from_bytes(digest[:8], "big") % span)


def _shift_one_da(value: str, days: int) -> str:
    text = value.strip()
    if not text:
        return ""
    digits = text.replace(".", "") if len(text) == 10 else text  # ACR-NEMA "YYYY.MM.DD"
    try:
        if len(digits) == 8 and digits.isdigit():
            return (dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
                    + dt.timedelta(days=days)).strftime("%Y%m%d")
        if len(digits) == 6 and digits.isdigit():  # year and month: shift its first day
            shifted = dt.date(int(digits[:4]), int(digits[4:]), 1) + dt.timedelta(days=days)
            return shifted.strftime("%Y%m")
        if len(digits) == 4 and digits.isdigit():
            shifted = dt.date(int(digits), 7, 1) + dt.timedelta(days=days)
            return shifted.strftime("%Y")
    except (ValueError, OverflowError):
        return ""
    return ""  # unparseable: never leave a date unshifted


def shift_da(value: str, days: int) -> str:
    """Shift a DA value (multi-valued with ``\\`` too); unparseable dates become empty."""
    return "\\".join(_shift_one_da(v, days) for v in str(value).split("\\"))


def _shift_one_dt(value: str, days: int) -> str:
    text = value.strip()
    if not text:
        return ""
    # Offset suffix (+hhmm/-hhmm) and the time part stay as they are.
    suffix = ""
    for sign in "+-":
        pos = text.find(sign, 4)
        if pos != -1:
            text, suffix = text[:pos], text[pos:]
            break
    # YYYY, YYYYMM and YYYYMMDD date parts all shift; what follows them is the time.
    date_part, time_part = text[:8], text[8:]
    shifted = _shift_one_da(date_part, days)
    if not shifted:
        return ""
    return shifted + time_part + suffix


def shift_dt(value: str, days: int) -> str:
    """Shift the date part of a DT value; time of day and UTC offset stay."""
    return "\\".join(_shift_one_dt(v, days) for v in str(value).split("\\"))
