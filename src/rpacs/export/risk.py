"""Re-identification risk: k-anonymity over the quasi-identifiers a package holds.

A participant's quasi-identifiers are those present in the package: sex, birth date (or
year), age, the years of their studies, and every column the spec adds. Participants with
the same values form a class; a class smaller than k means its members could be singled
out by anyone who knows those few facts. The report names them and says which
generalisation — birth date → year, age → 5-year band — would lift them to k.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Any

DEFAULT_K = 5

Traits = dict[str, str]


def _birth_year(value: str) -> str:
    return value[:4]


def _age_band(value: str) -> str:
    """``045Y`` or ``45`` → ``45-49``; months, weeks and days of infants → ``0-4``."""
    digits = "".join(ch for ch in value if ch.isdigit())
    if not digits:
        return value
    years = int(digits) if not value.endswith(("M", "W", "D")) else 0
    low = years - years % 5
    return f"{low}-{low + 4}"


#: Generalisations the report tries: (name, the trait it changes, how).
GENERALISATIONS: tuple[tuple[str, str, Callable[[str], str]], ...] = (
    ("birth date → year", "birth_date", _birth_year),
    ("age → 5-year band", "age", _age_band),
)


@dataclass(frozen=True)
class RiskReport:
    k: int
    quasi_identifiers: list[str]
    participants: int
    smallest_class: int
    #: Participants (IDs as in the package) in classes smaller than k.
    below_k: list[str]
    #: generalisation(s) → participants still below k after it.
    generalisations: dict[str, list[str]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "quasi_identifiers": self.quasi_identifiers,
            "participants": self.participants,
            "smallest_class": self.smallest_class,
            "below_k": self.below_k,
            "generalisations": [
                {"apply": name, "still_below_k": still, "lifts_all": not still}
                for name, still in self.generalisations.items()
            ],
        }

    def render(self) -> str:
        lines = [f"risk: k-anonymity over {', '.join(self.quasi_identifiers) or 'nothing'} "
                 f"({self.participants} participants, k={self.k}): smallest class "
                 f"{self.smallest_class}"]
        if self.below_k:
            lines.append(f"  {len(self.below_k)} participant(s) in classes smaller than "
                         f"{self.k}: {', '.join(self.below_k)}")
            for name, still in self.generalisations.items():
                verdict = "lifts all" if not still else f"leaves {len(still)} below k"
                lines.append(f"  with {name}: {verdict}")
        return "\n".join(lines)


def risk_report(traits: Mapping[str, Traits], k: int = DEFAULT_K) -> RiskReport:
    """The report over ``traits``: participant (as exported) → quasi-identifier values."""
    names = sorted({name for t in traits.values() for name, v in t.items() if v})
    below = _below_k(traits, names, k, {})
    generalisations: dict[str, list[str]] = {}
    present = [g for g in GENERALISATIONS if g[1] in names]
    if below:
        for size in range(1, len(present) + 1):
            for chosen in combinations(present, size):
                label = " and ".join(g[0] for g in chosen)
                generalisations[label] = _below_k(
                    traits, names, k, {g[1]: g[2] for g in chosen})
    return RiskReport(k=k, quasi_identifiers=names, participants=len(traits),
                      smallest_class=_smallest(traits, names, {}), below_k=below,
                      generalisations=generalisations)


def _classes(traits: Mapping[str, Traits], names: list[str],
             change: Mapping[str, Callable[[str], str]]) -> dict[str, tuple[str, ...]]:
    def value(t: Traits, name: str) -> str:
        raw = t.get(name, "")
        return change[name](raw) if name in change and raw else raw

    return {p: tuple(value(t, n) for n in names) for p, t in traits.items()}


def _below_k(traits: Mapping[str, Traits], names: list[str], k: int,
             change: Mapping[str, Callable[[str], str]]) -> list[str]:
    keys = _classes(traits, names, change)
    sizes = Counter(keys.values())
    return sorted(p for p, key in keys.items() if sizes[key] < k)


def _smallest(traits: Mapping[str, Traits], names: list[str],
              change: Mapping[str, Callable[[str], str]]) -> int:
    sizes = Counter(_classes(traits, names, change).values())
    return min(sizes.values(), default=0)


def participant_traits(per_study: list[Traits], added: Mapping[str, str]) -> Traits:
    """One participant's quasi-identifiers from their studies' (sex, age, birth date,
    study date) and the sidecar columns the spec added."""
    traits: Traits = {}
    for name in ("sex", "birth_date"):
        values = sorted({t.get(name, "") for t in per_study if t.get(name)})
        if values:
            traits[name] = "/".join(values)
    ages = sorted({t.get("age", "") for t in per_study if t.get("age")})
    if ages:
        traits["age"] = ages[0]  # the age at the first study: later ones follow from it
    years = sorted({t.get("study_date", "")[:4] for t in per_study if t.get("study_date")})
    if years:
        traits["study_years"] = "/".join(years)
    for column, value in added.items():
        if value:
            traits[column] = value
    return traits
