"""Projects: the validated spec, creation, lookup, profiles, the assignment rule, offsets."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from rpacs.db import AuditEvent, Participant, Project
from rpacs.deid import Profile, date_offset_days
from rpacs.errors import ConflictError, InvalidInputError, NotFoundError
from rpacs.projects import (
    ProjectSpec,
    check_assignment,
    create_project,
    date_offset_for,
    deid_profile,
    get_or_create_participant,
    get_project,
    list_projects,
    project_summary,
    set_deid_profile,
)

from .conftest import PROJECT

PROFILE = """
tags:
  - tag: StationName
    action: keep
"""


def _problems(**changes: object) -> list[str]:
    with pytest.raises(InvalidInputError) as caught:
        ProjectSpec(**{**PROJECT, **changes}).validated()  # type: ignore[arg-type]
    return caught.value.problems


def test_a_valid_spec_is_parsed_and_trimmed():
    spec = ProjectSpec(**{**PROJECT, "events": [" baseline", "followup "],
                          "pi_email": " pi@example.org "}).validated()
    assert spec.start_date == dt.date(2024, 1, 1) and spec.end_date == dt.date(2028, 12, 31)
    assert spec.events == ["baseline", "followup"] and spec.pi_email == "pi@example.org"
    assert (spec.end_action, spec.date_shift, spec.deid_profile) == ("anonymize",
                                                                     "per-project", None)
    default = ProjectSpec(**{k: v for k, v in PROJECT.items() if k != "events"})
    assert default.validated().events == ["Event01"]


@pytest.mark.parametrize(("changes", "option", "words"), [
    ({"acronym": "ABCD"}, "--acronym", "5-20"),
    ({"acronym": "A" * 21}, "--acronym", "5-20"),
    ({"acronym": "AB CD!"}, "--acronym", "letters, digits"),
    ({"rek": "  "}, "--rek", "required"),
    ({"rek": "9" * 65}, "--rek", "at most 64"),
    ({"pi_name": ""}, "--pi-name", "required"),
    ({"pi_email": "pi.example.org"}, "--pi-email", "not an e-mail"),
    ({"pi_email": "pi@localhost"}, "--pi-email", "not an e-mail"),
    ({"start_date": "2024-13-01"}, "--start", "YYYY-MM-DD"),
    ({"end_date": "31.12.2028"}, "--end", "YYYY-MM-DD"),
    ({"end_date": "2023-12-31"}, "--end", "after the start"),
    ({"end_date": "2024-01-01"}, "--end", "after the start"),
    ({"participant_pattern": "TP-(\\d"}, "--participant-pattern", "not a valid regular"),
    ({"participant_pattern": ""}, "--participant-pattern", "required"),
    ({"events": []}, "--events", "at least one"),
    ({"events": ["baseline", ""]}, "--events", "empty"),
    ({"events": ["base line"]}, "--events", "'base line'"),
    ({"events": ["E" * 65]}, "--events", "1-64"),
    ({"events": ["baseline", "baseline"]}, "--events", "letter case (baseline)"),
    ({"end_action": "archive"}, "--end-action", "delete, anonymize"),
    ({"date_shift": "per-study"}, "--date-shift", "per-project, per-participant"),
    ({"deid_profile": "tags: [{tag: NoSuchKeyword, action: keep}]"}, "--deid-profile",
     "NoSuchKeyword"),
    ({"deid_profile": "options: [\n"}, "--deid-profile", "YAML"),
])
def test_each_bad_value_gets_one_message_naming_its_option(changes, option, words):
    problems = _problems(**changes)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{option}: ") and words in problems[0], problems[0]


def test_every_problem_is_reported_at_once():
    problems = _problems(acronym="X", rek="", pi_name=" ", pi_email="nope", start_date="soon",
                         end_date="later", participant_pattern="[", events=["a b", "a b"],
                         end_action="keep", date_shift="never")
    options = [p.split(":", 1)[0] for p in problems]
    assert options == ["--acronym", "--rek", "--pi-name", "--pi-email", "--start", "--end",
                       "--participant-pattern", "--events", "--events", "--end-action",
                       "--date-shift"]


def test_create_gives_a_secret_an_audit_event_and_a_case_insensitive_name(
        installation, make_project):
    first = make_project()
    second = make_project(acronym="OTHERPROJ", date_shift="per-participant",
                          end_action="delete", deid_profile=PROFILE)
    assert len(first.secret) == 32 and first.secret != second.secret
    assert second.deid_profile == PROFILE
    with pytest.raises(ConflictError, match="'TESTPROJ' already exists"):
        make_project(acronym="testproj")
    assert [p.acronym for p in list_projects(installation)] == ["OTHERPROJ", "TESTPROJ"]
    assert get_project(installation, "testPROJ").id == first.id
    with pytest.raises(NotFoundError, match="no project 'NOSUCH'"):
        get_project(installation, "NOSUCH")
    with installation.db.session() as session:
        audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "project.create")
                                .order_by(AuditEvent.id)).all()
    assert [(a.project_id, a.actor, a.details) for a in audit] == [
        (first.id, "cli", {"acronym": "TESTPROJ"}), (second.id, "cli", {"acronym": "OTHERPROJ"})]


def test_an_invalid_spec_creates_nothing(installation):
    with pytest.raises(InvalidInputError):
        create_project(installation, ProjectSpec(**{**PROJECT, "pi_email": "x"}))
    assert list_projects(installation) == []


def test_summary_shows_everything_but_the_secret(installation, make_project):
    project = make_project()
    with installation.db.session() as session:
        row = session.get(Project, project.id)
        get_or_create_participant(session, row, "TP-0001")
        again = get_or_create_participant(session, row, "TP-0001")
        assert session.scalars(select(Participant)).all() == [again]
    summary = project_summary(installation, project)
    assert summary["acronym"] == "TESTPROJ" and summary["events"] == ["baseline", "followup"]
    assert (summary["participants"], summary["studies"], summary["series"],
            summary["instances"]) == (1, 0, 0, 0)
    assert summary["start_date"] == "2024-01-01" and summary["created_at"]
    assert summary["custom_deid_profile"] is False
    dumped = json.dumps(summary)
    assert "secret" not in dumped and project.secret.hex() not in dumped


def test_profile_is_validated_stored_and_used(installation, make_project):
    project = make_project()
    assert deid_profile(project) == Profile.default()
    set_deid_profile(installation, "TESTPROJ", PROFILE)
    stored = get_project(installation, "TESTPROJ")
    assert stored.deid_profile == PROFILE and deid_profile(stored) == Profile.from_yaml(PROFILE)
    assert project_summary(installation, stored)["custom_deid_profile"] is True
    with pytest.raises(InvalidInputError) as caught:
        set_deid_profile(installation, "TESTPROJ", "tags: [{tag: StationName, action: burn}]")
    assert caught.value.problems[0].startswith("profile: tags[0].action")
    assert get_project(installation, "TESTPROJ").deid_profile == PROFILE
    with pytest.raises(NotFoundError):
        set_deid_profile(installation, "NOSUCH", PROFILE)


def test_assignment_needs_a_matching_whole_id_and_a_known_event(make_project):
    project = make_project(participant_pattern=r"TP-\d{4}")
    check_assignment(project, "TP-0001", "followup")
    for bad_id in ("xTP-0001", "TP-00012", "TP-001", ""):
        with pytest.raises(InvalidInputError) as caught:
            check_assignment(project, bad_id, "baseline")
        assert [p.split(":")[0] for p in caught.value.problems] == ["--participant"]
    with pytest.raises(InvalidInputError) as caught:
        check_assignment(project, "Nordmann^Ola", "week9")
    first, second = caught.value.problems
    assert "Nordmann" not in first, "a mistyped ID may be a patient's name: never echoed"
    assert second == "--event: 'week9' is not an event of TESTPROJ (one of: baseline, followup)"


def test_a_research_id_must_be_a_valid_patient_id(make_project):
    project = make_project(participant_pattern=".*")
    check_assignment(project, "ANY-ID 7", "baseline")
    # Not ASCII (BJØRN was written as a Latin-1 byte into files declaring no character
    # set), a value or name-component separator, a space at an end (readers strip it).
    for bad_id in ("A\\B", "A" * 65, "tab\there", "BJØRN-1", "A^B", "P=1", " A", "A "):
        with pytest.raises(InvalidInputError, match="1-64 ASCII letters"):
            check_assignment(project, bad_id, "baseline")


def test_date_offsets_per_project_or_per_participant(make_project):
    shared = make_project()
    own = make_project(acronym="OWNSHIFT", date_shift="per-participant")
    assert date_offset_for(shared, "TP-0001") == date_offset_for(shared, "TP-0002") == \
        date_offset_days(shared.secret, None)
    assert date_offset_for(own, "TP-0001") == date_offset_days(own.secret, "TP-0001")
    assert date_offset_for(own, "TP-0002") == date_offset_days(own.secret, "TP-0002")
    assert date_offset_for(own, "TP-0001") < 0
