"""What every command shares: opening the installation, printing and progress.

Imports of the services happen inside the commands, so that ``rpacs --help`` and
``rpacs --version`` answer at once instead of loading pydicom and SQLAlchemy first.
"""

from __future__ import annotations

import gc
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


#: Whether this process is a command of its own still starting up: set by
#: :func:`own_process`, which ``main()`` calls, and cleared once the start-up is done.
#: Commands run inside another program, such as the tests, leave its garbage collector
#: as it is.
_STARTING = False


def own_process() -> None:
    """Called first by ``main()``: no garbage collection until the start-up is done.

    A command's imports (SQLAlchemy, the models, pydicom: about a second of CPU) make
    objects that live until it exits, and the collector's full passes over them while
    they are made cost about a seventh of that time and find nothing to free.
    """
    global _STARTING
    _STARTING = True
    gc.disable()


def start_up_done() -> None:
    """The end of a command's start-up (:func:`installation` calls it): what it made is
    frozen and collection resumes. Once per process; nothing when the commands run
    inside another program.

    Frozen, the start-up's objects are never walked again by the collector's full passes,
    which an import's batches and an export's results set off by the hundred, and the
    workers forked from here share their pages.
    """
    global _STARTING
    if _STARTING:
        _STARTING = False
        gc.freeze()
        gc.enable()


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
    start_up_done()
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
