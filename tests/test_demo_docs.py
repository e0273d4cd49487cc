"""The README and the docs tell the truth: commands, options, folders, options, safe list."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import click

from rpacs.cli import cli
from rpacs.deid import Option
from rpacs.installation import Installation
from rpacs.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md")}


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.DOTALL)


def _invocations(text: str) -> list[list[str]]:
    """Every ``rpacs ...`` command line in the code blocks, continuation lines joined."""
    found = []
    for block in _code_blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #", 1)[0].strip()
            if line.startswith("rpacs "):
                # Optional parts are written [--opt VALUE] and alternatives a|b.
                found.append(shlex.split(line.replace("[", " ").replace("]", " ")))
    return found


def test_readme_starts_with_the_two_commands():
    first = _code_blocks(README)[0].splitlines()
    assert first[0].startswith("make demo    # creates .venv, installs rpacs, runs the demo")
    assert first[1] == "make test    # lint + the whole test suite"


def test_every_documented_command_and_option_exists():
    invocations = _invocations(README) + [i for t in DOCS.values() for i in _invocations(t)]
    assert len(invocations) >= 12
    for words in invocations:
        command: click.Command = cli
        path = []
        for word in words[1:]:
            if not isinstance(command, click.Group) or word.startswith("-"):
                break
            sub = command.get_command(click.Context(command), word)
            if sub is None:
                break
            command, path = sub, [*path, word]
        assert path, f"no such command: {' '.join(words)}"
        known = {name for param in command.params for name in param.opts}
        for word in words:
            if word.startswith("--"):
                assert word.split("=")[0] in known, f"rpacs {' '.join(path)} has no {word}"


def test_the_documented_home_layout_is_the_real_one(tmp_path: Path):
    home = tmp_path / "home"
    inst = Installation.open(Settings(home=home, database_url=None, config=None))
    _ = inst.settings.installation_secret  # made on first use
    inst.close()
    layout = next(b for b in _code_blocks(README) if b.startswith("RPACS_HOME/"))
    for entry in home.iterdir():
        assert f"  {entry.name}" in layout, f"README's layout does not mention {entry.name}"


def test_the_profile_reference_names_every_option_and_every_safe_private_creator():
    reference = DOCS["deid-profile.md"]
    for option in Option:
        assert f"`{option.yaml_name}`" in reference and option.code in reference
    shipped = json.loads((ROOT / "src/rpacs/deid/safe-private.json").read_text())
    for creator in {item["creator"] for item in shipped}:
        assert f"`{creator}`" in reference, creator
