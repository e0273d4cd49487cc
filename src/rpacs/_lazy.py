"""Lazy package exports (PEP 562): a package names its whole public API, but a submodule is
imported only when one of its names is first used.

Why: a package ``__init__`` that imports every submodule makes any import of the package
load all of their dependencies — importing ``rpacs.archive.store`` (standard library only)
would load SQLAlchemy through ``rpacs.archive.index``. The import's worker processes must
start without SQLAlchemy and its parent without pydicom (see :mod:`rpacs.ingest.pool`), so
the packages on those paths export lazily. Each keeps a literal ``__all__`` and imports its
names under ``TYPE_CHECKING`` for type checkers and editors.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for package ``package``, from ``exports``: relative
    submodule name (``".store"``) → the public names it defines.

    A name is looked up in its submodule on first use and then set on the package, so
    later uses are plain attribute reads. A name not listed raises AttributeError, which is
    also what lets ``from package import submodule`` fall back to importing the submodule.
    """
    home = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = home.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(home))

    return __getattr__, __dir__
