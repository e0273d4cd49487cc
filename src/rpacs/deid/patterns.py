"""Text patterns of identifying numbers, shared by Clean and the review's flags.

Standard library only: the review and the export's scan judge values with them without
loading pydicom.
"""

from __future__ import annotations

#: A phone number or another long number: 8 or more digits, together or in groups of two
#: or more separated by one space or dash, after an optional ``+``; not within a decimal
#: number. Not a run of groups that all end in 0 (``0 1000 2000``, ``1800 2000 2200``):
#: b-values, delays and other protocol parameters are written so, and researchers select
#: series by them; a phone number almost never is.
#:
#: The parts, in order: not after a digit or a decimal point; not a run of round groups;
#: 8 digits ahead, a separator counting only between two digits on each side; the run of
#: groups, atomic (Python 3.11), so that a failed end never leaves a shorter match of fewer
#: than 8 digits; not followed by a digit or a decimal part.
PHONE_NUMBER = (
    r"(?<!\d)(?<!\d\.)"
    r"(?!(?:\d*0[ -](?=\d\d))+\d*0(?!\d|[ -]\d\d))"
    r"\+?(?=(?:\d(?:(?<=\d\d)[ -](?=\d\d))?){8})"
    r"(?>\d{2,}(?:[ -]\d{2,})*)"
    r"(?!\d|\.\d)"
)
