"""What every command shares: opening the installation, printing and progress.

Imports of the services happen inside the commands, so that ``rpacs --help`` and
``rpacs --version`` answer at once instead of loading pydicom and SQLAlchemy first.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..installation import Installation
    from ..settings import Settings

Progress = Callable[[int, int], None]


def load_settings() -> Settings:
    """``Settings.load()``: RPACS_HOME, RPACS_DATABASE_URL... (a problem is an input error
    naming the setting)."""
    from ..settings import Settings

    return Settings.load()


@contextmanager
def installation(settings: Settings | None = None) -> Iterator[Installation]:
    """The installation of ``settings`` (default: :func:`load_settings`), closed after."""
    from ..installation import Installation

    inst = Installation.open(settings or load_settings())
    try:
        yield inst
    finally:
        inst.close()


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def shorten(text: str, width: int, *, keep_end: bool = False) -> str:
    """``text`` cut to ``width`` characters with an ellipsis (at the start with keep_end)."""
    if len(text) <= width:
        return text
    return "…" + text[-(width - 1):] if keep_end else text[: width - 1] + "…"


@contextmanager
def progress_bar(label: str) -> Iterator[Progress | None]:
    """A tqdm bar on stderr when it is a terminal; nothing in scripts and logs."""
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(desc=label, unit="file", file=sys.stderr, leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()
