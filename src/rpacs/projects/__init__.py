"""Projects: ethics-approved containers of participants, events and their data."""

from .content import ProjectSpec
from .service import (
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

__all__ = [
    "ProjectSpec",
    "check_assignment",
    "create_project",
    "date_offset_for",
    "deid_profile",
    "get_or_create_participant",
    "get_project",
    "list_projects",
    "project_summary",
    "set_deid_profile",
]
