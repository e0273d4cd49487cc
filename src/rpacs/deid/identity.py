"""What a project writes into every instance of a participant (standard library only).

Apart from the engine so that the import's parent process can name it in a work plan
without loading pydicom.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    """What the project writes into every instance of a participant."""

    participant_id: str
    project_acronym: str
    event: str
