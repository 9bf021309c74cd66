"""Query policies: who may compute what on whose data, for which purpose, with which controls.

Pure: models, :func:`evaluate`, :func:`combine`, signed approvals and the usage
ledger; no grpc and no I/O beyond reading policy files (and the ledger's SQLite
file). Modules:

* :mod:`~mpc_gateway.policy.models`: the policy format;
* :mod:`~mpc_gateway.policy.loading`: :func:`load_policy`, checked against the schemas;
* :mod:`~mpc_gateway.policy.evaluate`: one owner's policy on one query plan, with the
  rules of its ``risk`` (:mod:`~mpc_gateway.policy.risk_rules`) and ``privacy``
  (:mod:`~mpc_gateway.policy.privacy_rules`) sections;
* :mod:`~mpc_gateway.policy.decision`: decisions, :func:`combine`, the dry-run report;
* :mod:`~mpc_gateway.policy.approvals`: signed approvals and their verification;
* :mod:`~mpc_gateway.policy.ledger`: per-analyst daily query counts, per dataset.
"""

from mpc_gateway.policy.approvals import (
    ApprovalBody,
    ApprovalStatus,
    SignedApproval,
    approvals_satisfied,
    require_approvals,
    sign_approval,
    verify_approval,
)
from mpc_gateway.policy.decision import (
    CombinedDecision,
    PolicyDecision,
    RequiredApproval,
    RuleCheck,
    combine,
)
from mpc_gateway.policy.evaluate import evaluate
from mpc_gateway.policy.ledger import UsageLedger, usage_key
from mpc_gateway.policy.loading import check_against_schema, load_policy
from mpc_gateway.policy.models import (
    ApprovalRule,
    ColumnPolicy,
    DatasetPolicy,
    OutputControls,
    Policy,
)
from mpc_gateway.policy.privacy_rules import privacy_charges

__all__ = [
    "Policy",
    "DatasetPolicy",
    "ColumnPolicy",
    "OutputControls",
    "ApprovalRule",
    "load_policy",
    "check_against_schema",
    "evaluate",
    "privacy_charges",
    "usage_key",
    "RuleCheck",
    "PolicyDecision",
    "RequiredApproval",
    "CombinedDecision",
    "combine",
    "ApprovalBody",
    "SignedApproval",
    "ApprovalStatus",
    "sign_approval",
    "verify_approval",
    "approvals_satisfied",
    "require_approvals",
    "UsageLedger",
]
