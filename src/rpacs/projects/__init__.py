"""Projects: ethics-approved containers of participants, events and their data."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .content import ProjectSpec
    from .overview import (
        ETHICS_WARNING_DAYS,
        GridCell,
        StudyGrid,
        ethics_state,
        series_list,
        study_grid,
    )
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
    "ETHICS_WARNING_DAYS",
    "GridCell",
    "ProjectSpec",
    "StudyGrid",
    "check_assignment",
    "create_project",
    "date_offset_for",
    "deid_profile",
    "ethics_state",
    "get_or_create_participant",
    "get_project",
    "list_projects",
    "project_summary",
    "series_list",
    "set_deid_profile",
    "study_grid",
]

# Lazy, as every package on the import's path: a name loads only its own submodule.
__getattr__, __dir__ = lazy_exports(__name__, {
    ".content": ("ProjectSpec",),
    ".overview": ("ETHICS_WARNING_DAYS", "GridCell", "StudyGrid", "ethics_state",
                  "series_list", "study_grid"),
    ".service": ("check_assignment", "create_project", "date_offset_for", "deid_profile",
                 "get_or_create_participant", "get_project", "list_projects",
                 "project_summary", "set_deid_profile"),
})
