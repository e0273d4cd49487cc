"""The DICOM gateway: Verification, Storage into the quarantine, Query/Retrieve on the archive."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .enum import Status
    from .remotes import (
        Destination,
        Remote,
        add_remote,
        check_ae_title,
        destination_for,
        list_remotes,
        remove_remote,
        visible_projects,
    )
    from .service import Gateway, GatewayConfig, build_ae, start_gateway

#: Public name -> module: loaded on first use, so that every ``rpacs`` command (the CLI
#: registers ``rpacs scp`` from this package) does not pay for pynetdicom at start.
_WHERE = {
    "Status": ".enum",
    "Destination": ".remotes",
    "Remote": ".remotes",
    "add_remote": ".remotes",
    "check_ae_title": ".remotes",
    "destination_for": ".remotes",
    "list_remotes": ".remotes",
    "remove_remote": ".remotes",
    "visible_projects": ".remotes",
    "Gateway": ".service",
    "GatewayConfig": ".service",
    "build_ae": ".service",
    "start_gateway": ".service",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)


__all__ = [
    "Destination",
    "Gateway",
    "GatewayConfig",
    "Remote",
    "Status",
    "add_remote",
    "build_ae",
    "check_ae_title",
    "destination_for",
    "list_remotes",
    "remove_remote",
    "start_gateway",
    "visible_projects",
]
