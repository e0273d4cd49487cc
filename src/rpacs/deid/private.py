"""Private elements: removed by default, kept only when on a safe list.

Vendors put anything in private elements, including the patient's name, so rpacs removes
them all unless an element is on the safe list: the technical elements that dcm2niix needs
to convert diffusion and mosaic data (``safe-private.json``, shipped) plus a project's own
additions. Elements are matched by (private creator, group, element offset within the block),
because the block number a vendor uses varies from file to file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class SafePrivateElement:
    creator: str
    group: int
    element: int  # offset within the private block, 0x00-0xFF
    why: str = ""

    @classmethod
    def from_mapping(cls, item: dict[str, Any]) -> SafePrivateElement:
        if not isinstance(item, dict):
            raise TypeError("must be a mapping with creator, group and element")
        group = int(str(item["group"]), 16)
        element = int(str(item["element"]), 16)
        if group % 2 == 0 or not 0x0009 <= group <= 0xFFFF:
            raise ValueError(f"group {item['group']} is not a private (odd) group")
        if not 0 <= element <= 0xFF:
            raise ValueError(f"element {item['element']} must be the offset 00-FF in the block")
        return cls(str(item["creator"]).strip(), group, element, str(item.get("why", "")))

    def as_mapping(self) -> dict[str, str]:
        return {"creator": self.creator, "group": f"{self.group:04X}",
                "element": f"{self.element:02X}"}

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.creator, self.group, self.element)


@cache
def default_safe_private() -> tuple[SafePrivateElement, ...]:
    """The shipped list of technical private elements that are safe to keep (cleaned)."""
    text = (resources.files(__package__) / "safe-private.json").read_text()
    return tuple(SafePrivateElement.from_mapping(item) for item in json.loads(text))
