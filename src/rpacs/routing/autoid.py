"""Auto-ID: random participant IDs drawn from a project's participant pattern.

Drawing a string from an arbitrary regular expression is not possible in general
(alternations, look-arounds, unbounded repeats), so auto-ID supports patterns built from:

- literal characters (letters, digits, ``-``, ``_`` and any escaped metacharacter, ``\\.``),
- ``\\d`` (a digit) and character classes of literals and ranges such as ``[A-Z0-9]``,
- each optionally repeated a fixed number of times: ``{4}``,
- optional ``^`` and ``$`` at the ends.

``BICAM-\\d{4}``, ``P[0-9]{3}[A-Z]`` and ``^HUS_\\d{6}$`` qualify; ``P\\d+`` or ``(A|B)\\d{3}``
do not. A project must also leave room for at least :data:`MIN_CHOICES` distinct IDs.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass

from ..errors import InvalidInputError

MIN_CHOICES = 1000
_META = set(".^$*+?{}[]\\|()")


@dataclass(frozen=True)
class IdTemplate:
    """A supported pattern: a sequence of character choices, one per position."""

    positions: tuple[str, ...]

    @property
    def choices(self) -> int:
        total = 1
        for chars in self.positions:
            total *= len(chars)
        return total

    def draw(self) -> str:
        return "".join(secrets.choice(chars) for chars in self.positions)


def _class(body: str) -> str:
    chars: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            if body[i + 1] == "d":
                chars.extend(string.digits)
            else:
                chars.append(body[i + 1])
            i += 2
            continue
        if i + 2 < len(body) and body[i + 1] == "-":
            low, high = char, body[i + 2]
            if ord(high) < ord(low):
                raise ValueError("a range in a character class runs backwards")
            chars.extend(chr(c) for c in range(ord(low), ord(high) + 1))
            i += 3
            continue
        chars.append(char)
        i += 1
    if not chars or body.startswith("^"):
        raise ValueError("negated or empty character classes are not supported")
    return "".join(dict.fromkeys(chars))


def template_of(pattern: str) -> IdTemplate:
    """The template of a supported pattern, or InvalidInputError saying what is not."""
    try:
        return _parse(pattern)
    except ValueError as exc:
        raise InvalidInputError(
            f"participant pattern {pattern}: auto-ID cannot draw IDs from it ({exc}); it "
            "supports literal text, \\d, classes like [A-Z0-9] and fixed repeats like {4}"
        ) from exc


def _parse(pattern: str) -> IdTemplate:
    body = pattern
    if body.startswith("^"):
        body = body[1:]
    if body.endswith("$") and not body.endswith("\\$"):
        body = body[:-1]
    atoms: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\":
            if i + 1 >= len(body):
                raise ValueError("a trailing backslash")
            nxt = body[i + 1]
            if nxt == "d":
                atoms.append(string.digits)
            elif nxt in _META or not nxt.isalnum():
                atoms.append(nxt)
            else:
                raise ValueError(f"\\{nxt} is not supported")
            i += 2
        elif char == "[":
            end = body.find("]", i + 2)
            if end < 0:
                raise ValueError("an unclosed character class")
            atoms.append(_class(body[i + 1:end]))
            i = end + 1
        elif char == "{":
            match = re.match(r"\{(\d+)\}", body[i:])
            if match is None or not atoms:
                raise ValueError("only fixed repeats like {4} are supported")
            count = int(match.group(1))
            if not 1 <= count <= 64:
                raise ValueError("a repeat must be between 1 and 64")
            atoms.extend([atoms[-1]] * (count - 1))
            i += len(match.group(0))
        elif char in _META:
            raise ValueError(f"'{char}' is not supported")
        else:
            atoms.append(char)
            i += 1
    if not atoms:
        raise ValueError("the pattern is empty")
    if len(atoms) > 64:
        raise ValueError("IDs would be longer than 64 characters")
    return IdTemplate(tuple(atoms))


def check_auto_id_pattern(pattern: str) -> IdTemplate:
    """A template with room for at least MIN_CHOICES IDs that all match ``pattern``."""
    template = template_of(pattern)
    if template.choices < MIN_CHOICES:
        raise InvalidInputError(
            f"participant pattern {pattern}: allows only {template.choices} IDs; auto-ID "
            f"needs room for at least {MIN_CHOICES}")
    for _ in range(20):  # the parser and re must agree; a disagreement is a bug to report
        if not re.fullmatch(pattern, template.draw()):
            raise InvalidInputError(
                f"participant pattern {pattern}: drawn IDs do not match it; not supported")
    return template
