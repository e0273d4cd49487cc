"""Profiles: the default, options from the table, overrides and their validation in YAML."""

from __future__ import annotations

import pytest

from rpacs.deid import DEFAULT_OPTIONS, Option, Profile, parse_tag, table
from rpacs.errors import InvalidInputError


def test_the_default_profile():
    assert Profile.default().options == DEFAULT_OPTIONS == {
        Option.RETAIN_LONGITUDINAL_MODIFIED_DATES, Option.RETAIN_PATIENT_CHARACTERISTICS,
        Option.CLEAN_DESCRIPTORS}
    assert Profile.from_yaml("") == Profile.default()
    assert Profile.from_yaml("options: []").options == frozenset()


def test_options_carry_their_cid_7050_codes():
    codes = {o.code for o in Option}
    assert codes == {f"1131{n:02d}" for n in range(1, 13)}
    assert Option.CLEAN_DESCRIPTORS.code == "113105"
    assert Option.from_name("113107") is Option.RETAIN_LONGITUDINAL_MODIFIED_DATES
    assert Option.from_name("rtnDevIdOpt") is Option.RETAIN_DEVICE_IDENTITY


def test_options_change_the_rows_they_name_and_the_more_retaining_wins():
    row = next(r for r in table() if r.tag == "(0008,0022)")  # Acquisition Date
    assert Profile.basic().code_for(row) == "X/Z"
    assert Profile(options=frozenset({Option.RETAIN_LONGITUDINAL_MODIFIED_DATES})
                   ).code_for(row) == "C"
    both = frozenset({Option.RETAIN_LONGITUDINAL_MODIFIED_DATES,
                      Option.RETAIN_LONGITUDINAL_FULL_DATES})
    assert Profile(options=both).code_for(row) == "K"
    # An option that does not name the row leaves the basic action.
    assert Profile(options=frozenset({Option.RETAIN_UIDS})).code_for(row) == "X/Z"


@pytest.mark.parametrize("text", ["PatientName", "(0010,0010)", "0010,0010", " (0010, 0010) "])
def test_tags_are_keywords_or_numbers(text: str):
    assert parse_tag(text) == 0x00100010


def test_profile_round_trips_through_yaml():
    profile = Profile.from_yaml(
        """
        options: [retain-device-identity, 113105]
        tags:
          - {tag: StationName, action: set, value: SCANNER1}
          - {tag: "(0032,4000)", action: regex-keep, pattern: "\\\\bKONTROLL\\\\b"}
          - {tag: ProtocolName, action: keep}
        safe_private:
          - {creator: "SIEMENS MR HEADER", group: "0019", element: "0C"}
        """
    )
    assert profile.options == {Option.RETAIN_DEVICE_IDENTITY, Option.CLEAN_DESCRIPTORS}
    assert profile.overrides[1].pattern == "\\bKONTROLL\\b"
    assert Profile.from_yaml(profile.to_yaml()) == profile


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("tags: [: bad", "not valid YAML"),
        ("- a list", "must be a mapping"),
        ("colour: red", "unknown key(s): colour"),
        ("options: retain-uids", "options: must be a list"),
        ("options: [no-such-option]", "options[0]: unknown option 'no-such-option'"),
        ("options: [clean-pixel-data]", "options[0]: 'clean-pixel-data' is not supported"),
        ("tags: [{tag: NotAKeyword, action: keep}]", "tags[0].tag: 'NotAKeyword'"),
        ("tags: [{tag: StationName, action: smash}]", "tags[0].action: 'smash'"),
        ("tags: [{tag: StationName}]", "tags[0]: needs 'tag' and 'action'"),
        ("tags: [{tag: StationName, action: keep, colour: red}]", "tags[0]: unknown key"),
        ("tags: [{tag: StationName, action: set}]", "tags[0].value: 'set' needs a value"),
        ("tags: [{tag: StationName, action: set, value: ABCDEFGHIJKLMNOPQ}]",
         "tags[0].value: longer than VR SH allows (16"),
        ("tags: [{tag: Rows, action: set, value: '5'}]", "tags[0].action: 'set' needs a text"),
        ("tags: [{tag: ReferencedImageSequence, action: regex-keep, pattern: x}]",
         "tags[0].action: 'regex-keep' needs a text"),
        ("tags: [{tag: StationName, action: keep, value: X}]", "only 'set' takes a value"),
        ("tags: [{tag: StationName, action: regex-keep, pattern: '('}]",
         "tags[0].pattern: not a valid regular expression"),
        ("tags: [{tag: StationName, action: regex-keep}]", "'regex-keep' needs a pattern"),
        ("tags: [{tag: '(0019,100C)', action: keep}]", "is private: list it under safe_private"),
        ("tags: [{tag: PatientID, action: keep}]", "written by rpacs itself"),
        ("tags: [{tag: '(0002,0013)', action: keep}]", "written by rpacs itself"),
        ("tags: [{tag: StationName, action: keep}, {tag: '(0008,1010)', action: remove}]",
         "tags[1].tag: (0008,1010) has more than one rule"),
        ("safe_private: [{creator: X, group: '0010', element: '01'}]",
         "safe_private[0]: group 0010 is not a private (odd) group"),
        ("safe_private: [{creator: X, group: '0019', element: '1001'}]", "safe_private[0]"),
        ("safe_private: [{group: '0019', element: '01'}]", "safe_private[0]"),
    ],
)
def test_bad_profiles_name_the_key(text: str, needle: str):
    with pytest.raises(InvalidInputError) as caught:
        Profile.from_yaml(text)
    assert any(needle in problem for problem in caught.value.problems), caught.value.problems


def test_every_problem_is_reported_at_once():
    with pytest.raises(InvalidInputError) as caught:
        Profile.from_yaml("options: [nope]\ntags: [{tag: Nope, action: keep}]\nextra: 1")
    assert len(caught.value.problems) == 3
