"""UIDs: keyed, one-way, valid replacements (PS3.5 9.1 and the 2.25 UUID-derived root)."""

from __future__ import annotations

import hashlib
import hmac
import re

_VALID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def uid_for(secret: bytes, uid: str) -> str:
    """``2.25.`` + the decimal of the first 128 bits of HMAC-SHA256(secret, uid).

    Keyed, so nobody without the project's secret can test a guessed original UID against
    the archive (the reference importer's unkeyed hash of UID + project name can be
    brute-forced); deterministic, so pieces of a study sent on different days merge; and
    at most 44 characters, with no leading zeros, so always a valid UID.
    """
    original = uid.strip(" \x00")
    digest = hmac.new(secret, original.encode("ascii", "replace"), hashlib.sha256).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def is_valid_uid(uid: str) -> bool:
    """True when ``uid`` follows PS3.5 9.1: ≤ 64 chars, digits and dots, no leading zeros."""
    return len(uid) <= 64 and bool(_VALID.match(uid))


def study_id_for(study_uid: str) -> str:
    """A StudyID (SH, ≤ 16 chars) derived from the new StudyInstanceUID.

    Two projects holding the same study get different StudyInstanceUIDs, hence different
    StudyIDs, so they appear as two accessions in a viewer.
    """
    digest = hashlib.sha256(study_uid.encode("ascii")).digest()
    return f"{int.from_bytes(digest[:8], 'big') % 10**16:016d}"
