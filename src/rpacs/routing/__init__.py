"""Routing: assigning received studies (by hand, rule, coupling list, auto-ID) and withdrawals."""

from .autoid import IdTemplate, check_auto_id_pattern, template_of
from .content import Assignment, Outcome, Reason
from .coupling import accession_key, coupling_entry, upload_coupling_list
from .rules import RuleSpec, RuleView, add_rule, list_rules, remove_rule, rule_matches
from .service import (
    apply_assignment,
    assign_received,
    assign_study,
    auto_id_for,
    import_assigned,
    route_study,
    set_auto_id,
)
from .withdrawal import WithdrawalSummary, withdraw_participant

__all__ = [
    "Assignment",
    "IdTemplate",
    "Outcome",
    "Reason",
    "RuleSpec",
    "RuleView",
    "WithdrawalSummary",
    "accession_key",
    "add_rule",
    "apply_assignment",
    "assign_received",
    "assign_study",
    "auto_id_for",
    "check_auto_id_pattern",
    "coupling_entry",
    "import_assigned",
    "list_rules",
    "remove_rule",
    "route_study",
    "rule_matches",
    "set_auto_id",
    "template_of",
    "upload_coupling_list",
    "withdraw_participant",
]
