"""Routing rules: trusted senders whose data already carries a pseudonymised PatientID."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from ..db import AuditEvent, Project, RoutingRule
from ..errors import InvalidInputError, NotFoundError
from ..installation import Installation
from ..net.remotes import check_ae_title
from ..projects import get_project


@dataclass(frozen=True)
class RuleSpec:
    """A rule as given on the command line; empty criteria match everything."""

    project: str
    event: str
    called_ae: str = ""
    calling_ae: str = ""
    patient_id_regex: str = ""
    patient_name_regex: str = ""
    active: bool = True


@dataclass(frozen=True)
class RuleView:
    id: int
    project: str
    event: str
    called_ae: str
    calling_ae: str
    patient_id_regex: str
    patient_name_regex: str
    active: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _regex_problem(value: str, option: str) -> str | None:
    if len(value) > 200:
        return f"{option}: at most 200 characters"
    try:
        re.compile(value)
    except re.error as exc:
        return f"{option}: not a valid regular expression ({exc})"
    return None


def add_rule(inst: Installation, spec: RuleSpec, actor: str = "cli") -> RuleView:
    """Add a rule; every problem of ``spec`` is reported at once."""
    problems: list[str] = []
    project = get_project(inst, spec.project)
    if spec.event not in project.events:
        problems.append(f"--event: '{spec.event}' is not an event of {project.acronym} "
                        f"(one of: {', '.join(project.events)})")
    titles = {}
    for option, value in (("--called-ae", spec.called_ae), ("--calling-ae", spec.calling_ae)):
        if value:
            try:
                titles[option] = check_ae_title(value, option)
            except InvalidInputError as exc:
                problems.extend(exc.problems)
    for option, value in (("--patient-id-regex", spec.patient_id_regex),
                          ("--patient-name-regex", spec.patient_name_regex)):
        problem = _regex_problem(value, option) if value else None
        if problem:
            problems.append(problem)
    if problems:
        raise InvalidInputError(problems)
    with inst.db.session() as session:
        rule = RoutingRule(
            project_id=project.id, event=spec.event,
            called_ae=titles.get("--called-ae", ""), calling_ae=titles.get("--calling-ae", ""),
            patient_id_regex=spec.patient_id_regex, patient_name_regex=spec.patient_name_regex,
            active=spec.active,
        )
        session.add(rule)
        session.flush()
        session.add(AuditEvent(actor=actor, action="route.add", project_id=project.id,
                               count=1, details={"rule": rule.id}))
        return _view(rule, project.acronym)


def _view(rule: RoutingRule, acronym: str) -> RuleView:
    return RuleView(rule.id, acronym, rule.event, rule.called_ae, rule.calling_ae,
                    rule.patient_id_regex, rule.patient_name_regex, rule.active)


def list_rules(inst: Installation) -> list[RuleView]:
    with inst.db.session() as session:
        rows = session.execute(select(RoutingRule, Project.acronym)
                               .join(Project, Project.id == RoutingRule.project_id)
                               .order_by(RoutingRule.id))
        return [_view(rule, acronym) for rule, acronym in rows]


def remove_rule(inst: Installation, rule_id: int, actor: str = "cli") -> None:
    with inst.db.session() as session:
        rule = session.get(RoutingRule, rule_id)
        if rule is None:
            raise NotFoundError(f"no routing rule {rule_id} (see: rpacs route list)")
        project_id = rule.project_id
        session.execute(delete(RoutingRule).where(RoutingRule.id == rule_id))
        session.add(AuditEvent(actor=actor, action="route.remove", project_id=project_id,
                               count=1, details={"rule": rule_id}))


def rule_matches(rule: RoutingRule, *, called_ae: str, calling_ae: str, patient_id: str,
                 patient_name: str) -> bool:
    """Whether a received study meets every criterion of ``rule`` (regexes: fullmatch)."""
    if rule.called_ae and rule.called_ae != called_ae:
        return False
    if rule.calling_ae and rule.calling_ae != calling_ae:
        return False
    if rule.patient_id_regex and not re.fullmatch(rule.patient_id_regex, patient_id):
        return False
    return not (rule.patient_name_regex
                and not re.fullmatch(rule.patient_name_regex, patient_name))
