"""Query strings shared by the pages and the API, parsed into the services' own filters."""

from __future__ import annotations

import datetime as dt

from ..audit import AuditQuery
from ..errors import InvalidInputError
from ..review import ReviewFilter


def review_filter(q: str = "", flagged: bool = False, nesting: str = "any",
                  show: str = "new", sort: str = "tag", desc: bool = False) -> ReviewFilter:
    """The Review page's query string as a filter; by default only what is new."""
    wanted = ReviewFilter(query=q[:200], flagged_only=flagged, nesting=nesting,
                          new_only=show != "all", sort=sort, descending=desc)
    problems = wanted.problems()
    if show not in ("new", "all"):
        problems.append(f"show: '{show}' is not one of new, all")
    if problems:
        raise InvalidInputError(problems)
    return wanted


def review_filter_all(q: str = "", flagged: bool = False, nesting: str = "any",
                      show: str = "all", sort: str = "tag", desc: bool = False) -> ReviewFilter:
    """The API's filter: the whole inventory unless ``show=new`` asks for what is new."""
    return review_filter(q, flagged, nesting, show, sort, desc)


def audit_query(actor: str = "", action: str = "", since: str = "") -> AuditQuery:
    """The audit log's filters from the query string (shared with the API)."""
    day = None
    if since:
        try:
            day = dt.date.fromisoformat(since)
        except ValueError:
            raise InvalidInputError(f"since: '{since}' is not a date (YYYY-MM-DD)") from None
    return AuditQuery(actor=actor[:100], action=action[:50], since=day)
