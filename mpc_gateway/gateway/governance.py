"""The gateway's side of the data owners' conditions: policies and daily limits.

The gateway evaluates the consortium's policy and every institution's published
policy before anything runs; the combined decision fixes the plan it dispatches
(with the strictest output controls) and the approvals it must collect. Each
node re-checks its own policy and the approvals on the signed order anyway.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from mpc_gateway.computations import VOCABULARY
from mpc_gateway.errors import BudgetExhaustedError, ConfigurationError
from mpc_gateway.pki import Identity
from mpc_gateway.policy import CombinedDecision, Policy, UsageLedger, combine, evaluate, load_policy
from mpc_gateway.policy.declaration import Governed
from mpc_gateway.query.schema import DatasetSchema

__all__ = ["Governance"]

G = TypeVar("G", bound=Governed)


def _now() -> datetime:
    return datetime.now(UTC)


class Governance:
    """Every policy the gateway enforces, and the per-analyst daily usage."""

    def __init__(
        self,
        consortium: Path,
        published: dict[str, Path],
        schemas: dict[str, DatasetSchema],
        usage_db: Path | None,
    ) -> None:
        self.policies: list[Policy] = [load_policy(consortium, schemas, VOCABULARY)]
        for node, path in published.items():
            policy = load_policy(path, schemas, VOCABULARY)
            if policy.owner != node:
                raise ConfigurationError(
                    f"the policy published for node {node} ({path}) is owned by {policy.owner!r}"
                )
            self.policies.append(policy)
        if usage_db is not None:
            usage_db.parent.mkdir(parents=True, exist_ok=True)
        self.ledger = UsageLedger(usage_db)
        self._limits = [
            d.max_queries_per_day
            for p in self.policies
            for d in p.datasets.values()
            if d.max_queries_per_day
        ]

    def versions(self) -> dict[str, str]:
        return {policy.owner: policy.version_hash for policy in self.policies}

    def decide(self, caller: Identity, plan: G) -> CombinedDecision[G]:
        """Evaluate every policy; the combined decision (not yet raised if denied)."""
        now, used = _now(), self.ledger.count(str(caller))
        return combine(evaluate(policy, plan, caller, now, used) for policy in self.policies)

    def count_query(self, caller: Identity) -> None:
        """Count one dispatched query against the analyst's strictest daily limit."""
        limit = min(self._limits, default=None)
        if not self.ledger.record_if_below(str(caller), limit):
            raise BudgetExhaustedError(f"{caller} has used today's {limit} queries")
