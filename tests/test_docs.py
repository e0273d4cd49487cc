"""The documentation's examples run as written."""

from __future__ import annotations

from pathlib import Path

from rpacs.deid import Option, Profile

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_profile_example_in_the_reference_parses():
    text = (DOCS / "deid-profile.md").read_text(encoding="utf-8")
    example = text.split("```yaml", 1)[1].split("```", 1)[0]
    profile = Profile.from_yaml(example)
    assert Option.RETAIN_DEVICE_IDENTITY in profile.options
    assert [o.action for o in profile.overrides] == ["keep", "set", "regex-keep", "empty",
                                                    "remove"]


def test_export_spec_examples_parse_and_the_first_is_the_issues():
    from rpacs.export import ExportSpec

    text = (DOCS / "export-spec.md").read_text(encoding="utf-8")
    examples = [block.split("```", 1)[0] for block in text.split("```yaml")[1:]]
    assert examples
    for example in examples:
        ExportSpec.from_yaml(example)
    issue = (DOCS.parent / "tests" / "export" / "oslo-collab.yaml").read_text(encoding="utf-8")
    assert examples[0].lstrip("\n") == issue
