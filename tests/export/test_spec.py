"""The export spec: the issue's example parses exactly; every problem names its key."""

from __future__ import annotations

import pytest

from rpacs.errors import InvalidInputError
from rpacs.export import (
    DatesMode,
    ExportSpec,
    Format,
    IdentityMode,
    PackageKind,
    TagAction,
    builtin_spec,
    safe_name,
)
from rpacs.export.layout import render

from .conftest import ISSUE_SPEC


def test_the_issue_spec_parses_as_written():
    spec = ExportSpec.from_yaml(ISSUE_SPEC)
    assert spec.name == "oslo-collab"
    assert spec.select.events == ("baseline", "followup")
    assert spec.select.modalities == ("MR",)
    assert spec.select.series_description == "(?i)t1|flair"
    assert spec.identity.participant is IdentityMode.RANDOM
    assert spec.identity.pattern == "OSL{n:04d}" and spec.identity.capacity == 10_000
    assert spec.identity.coupling_list is True
    assert spec.dates is DatesMode.SHIFT
    assert [(r.keyword, r.action) for r in spec.tags] == [
        ("SeriesDescription", TagAction.CLEAN), ("SeriesDescription", TagAction.REPLACE),
        ("PatientBirthDate", TagAction.FROM_SIDECAR), ("StationName", TagAction.REMOVE),
        ("StudyDescription", TagAction.SET)]
    assert spec.tags[1].value == "_" and spec.tags[1].replacement == "-"
    assert spec.sidecar_columns == ("birth_date",)
    assert spec.formats == (Format.DICOM, Format.NIFTI)
    assert spec.package is PackageKind.ZIP_PER_PARTICIPANT
    assert spec.layout.series_template == (
        "{participant}/{event}/{modality}/{series_number:03d}_{series_description}")


def test_every_problem_is_reported_naming_its_key():
    text = """
name: "bad name!"
colour: blue
select: {events: baseline, series_description: "(unclosed"}
identity: {participant: sometimes, pattern: "OSL", coupling_list: maybe}
dates: fuzzy
tags:
  - {tag: NoSuchKeyword, remove: true}
  - {tag: PatientID, set: x}
  - {tag: StationName, remove: true, set: y}
  - {tag: SeriesDescription, replace: {pattern: "_"}}
  - {tag: ReferencedImageSequence, set: x}
  - {tag: "0009,1001", clean: true}
layout: "{participant}/{colour}.dcm"
formats: [dicom, jpeg]
package: tarball
"""
    with pytest.raises(InvalidInputError) as caught:
        ExportSpec.from_yaml(text)
    problems = "\n".join(caught.value.problems)
    for key in ("name:", "unknown key(s): colour", "select.series_description:",
                "identity.participant:", "identity.pattern:", "identity.coupling_list:",
                "dates:", "tags[0].tag:", "tags[1].tag: PatientID", "tags[2]:",
                "tags[3].replace:", "tags[4].tag: ReferencedImageSequence is not a text",
                "tags[5].tag: (0009,1001) is not a text", "layout: unknown field {colour}",
                "formats:",
                "package:"):
        assert key in problems, key


def test_layout_needs_an_instance_field_and_nifti_a_series_folder():
    base = "name: x\nformats: [dicom, nifti]\n"
    with pytest.raises(InvalidInputError, match="instance_number"):
        ExportSpec.from_yaml(base + 'layout: "{participant}/{series_number}.dcm"')
    with pytest.raises(InvalidInputError, match="with nifti"):
        ExportSpec.from_yaml(base + 'layout: "{participant}/{instance_number}/x.dcm"\n'
                             .replace("x.dcm", "{sop_uid}.dcm"))
    with pytest.raises(InvalidInputError, match="relative path"):
        ExportSpec.from_yaml('name: x\nlayout: "../{sop_uid}.dcm"')


def test_a_date_cannot_come_back_when_dates_are_removed():
    with pytest.raises(InvalidInputError, match="dates: remove"):
        ExportSpec.from_yaml("name: x\ndates: remove\n"
                             "tags: [{tag: PatientBirthDate, from_sidecar: birth_date}]")


def test_builtins():
    assert builtin_spec("research-package").identity.participant is IdentityMode.KEEP
    anonymized = builtin_spec("anonymized-package")
    assert anonymized.random_identity and not anonymized.identity.coupling_list
    assert builtin_spec("nifti").formats == (Format.NIFTI,)
    study = builtin_spec("study:1.2.826.0.1.3680043.8.498.1")
    assert study.dicomdir and study.select.study_uid == "1.2.826.0.1.3680043.8.498.1"
    assert builtin_spec("no-such-builtin") is None
    with pytest.raises(InvalidInputError, match="study:"):
        builtin_spec("study:not a uid")


@pytest.mark.parametrize(("value", "expected"), [
    ("t1 mprage/sag", "t1_mprage_sag"),
    ("CON", "_CON"),
    ("aux.txt", "_aux.txt"),
    ("ends with dots...", "ends_with_dots"),
    ('a<b>c:d"e|f?g*h\\i', "a_b_c_d_e_f_g_h_i"),
    ("", "_"),
    ("..", "_"),
    ("Ærlig Øy Åsane", "AErlig_Oy_Asane"),  # transliterated as clean: true does
    ("Hode Ærø ß œ straße", "Hode_AEro_ss_oe_strasse"),
])
def test_safe_names(value, expected):
    assert safe_name(value) == expected


@pytest.mark.parametrize("text", [
    "name: ../x\n", "name: ..\n", "name: a/b\n", "name: .hidden\n", "name: /etc\n",
    "name: ok\nlayout: '../../{sop_uid}.dcm'\n",
    "name: ok\nlayout: '/tmp/{sop_uid}.dcm'\n",
    "name: ok\nlayout: '{participant}/../../{sop_uid}.dcm'\n",
    "name: ok\nlayout: '{participant}/./{sop_uid}.dcm'\n",
    "name: ok\nlayout: '{participant}//{sop_uid}.dcm'\n",
    "name: ok\nlayout: '{participant.__class__}/{sop_uid}.dcm'\n",
    "name: ok\nlayout: '{participant[0]}/{sop_uid}.dcm'\n",
])
def test_a_spec_cannot_name_a_path_outside_its_folder(text: str):
    """The name is a file name beside the package; the layout a path inside it (stored
    specs of the web app are parsed the same way)."""
    with pytest.raises(InvalidInputError):
        ExportSpec.from_yaml(text)


def test_a_value_cannot_add_a_folder_level():
    path = render("{participant}/{series_description}/{instance_number:05d}.dcm",
                  {"participant": "../etc", "series_description": "a/b", "instance_number": 7})
    assert path == "_etc/a_b/00007.dcm"
    values = {"participant": "../..", "event": "..", "modality": "/etc", "study_date": "a/b",
              "series_description": "..\\..\\x", "sop_uid": "../../passwd"}
    path = render("{participant}/{event}/{modality}/{study_date}/{series_description}/"
                  "{sop_uid}.dcm", values)
    assert ".." not in path.split("/") and not path.startswith("/")
    assert path.count("/") == 5 and "\\" not in path
    # The study built-in takes digits and dots only; its name quotes none of them.
    assert builtin_spec("study:1.2.3").name == "study"
    with pytest.raises(InvalidInputError):
        builtin_spec("study:../../x")


def test_a_set_value_must_be_valid_for_its_attribute_and_pixels_stay():
    text = ("name: x\ntags:\n"
            "  - {tag: PatientWeight, set: heavy}\n"
            "  - {tag: StudyDate, set: yesterday}\n"
            "  - {tag: PixelData, remove: true}\n"
            "  - {tag: SeriesDescription, set: '" + "x" * 65 + "'}\n"
            "  - {tag: ImageType, set: 'DERIVED\\\\SECONDARY'}\n"
            "  - {tag: ImageComments, set: 'free text\\\\with a backslash'}\n"
            "  - {tag: PatientAge, set: 045Y}\n")
    with pytest.raises(InvalidInputError) as caught:
        ExportSpec.from_yaml(text)
    problems = caught.value.problems
    assert problems == [
        "tags[0].set: 'heavy' is not a valid DS value (PS3.5 table 6.2-1) for PatientWeight",
        "tags[1].set: 'yesterday' is not a valid DA value (PS3.5 table 6.2-1) for StudyDate",
        "tags[2].tag: PixelData is written as stored: no viewer could show the image "
        "without it as it is",
        f"tags[3].set: '{'x' * 20}…' is 65 characters, more than LO allows (64) for "
        "SeriesDescription"]


def test_no_rule_changes_what_a_viewer_needs():
    with pytest.raises(InvalidInputError, match="Modality is written as stored"):
        ExportSpec.from_yaml("name: x\ntags: [{tag: Modality, set: ''}]")


def test_the_character_set_is_the_exports_to_declare():
    with pytest.raises(InvalidInputError, match="SpecificCharacterSet is written by the export"):
        ExportSpec.from_yaml("name: x\ntags: [{tag: SpecificCharacterSet, set: ISO_IR 192}]")
