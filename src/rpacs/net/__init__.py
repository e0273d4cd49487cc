"""The DICOM gateway: Verification, Storage into the quarantine, Query/Retrieve on the archive."""

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
