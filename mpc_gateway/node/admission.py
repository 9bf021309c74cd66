"""What a node lets an order take: its institution's own policy, daily limit and budgets.

Whatever the gateway decided, every node evaluates its own policy on the signed
order (approvals included) before contributing. Every order it lets run counts
once on the daily limit (a quantile search counts each round) and pays its
privacy cost from this node's own budgets; an order the node does not complete
released nothing, so what it took is given back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from cryptography import x509

from mpc_gateway.errors import BudgetExhaustedError
from mpc_gateway.orders import ExecutionOrder
from mpc_gateway.policy import (
    Policy,
    RequiredApproval,
    UsageLedger,
    evaluate,
    privacy_charges,
    require_approvals,
    usage_key,
)
from mpc_gateway.privacy import Charge, PrivacyLedger

__all__ = ["Admission", "Taken"]


@dataclass(frozen=True)
class Taken:
    """What one order took of the daily limit and privacy budgets (given back if it fails)."""

    key: str
    day: date
    order: str
    charged: bool


@dataclass
class Admission:
    """Node ``name``'s policy over its usage and privacy ledgers."""

    name: str
    policy: Policy
    usage: UsageLedger
    privacy: PrivacyLedger
    ca: x509.Certificate
    trust_domain: str

    def admit(self, order: ExecutionOrder, *, synced: bool = True) -> Taken:
        """Refuse what this institution's policy refuses; otherwise count and charge the order.

        ``synced=False``: the count is written but not yet synced to disk, for a
        batch's members before its last one, whose synced count (or a refusal's
        synced giving back) makes every write before it durable: one fsync per batch.
        """
        plan, now = order.plan, datetime.now(UTC)
        key = usage_key(plan.dataset, plan.analyst)
        charges = privacy_charges([self.policy], plan, plan.analyst)
        decision = evaluate(
            self.policy,
            plan,
            plan.analyst,
            now,
            self.usage.count(key),
            check_plan_controls=True,
            privacy_spent=self.privacy.spent_by_holder(charges),
        )
        decision.raise_if_denied()
        if decision.approval is not None:
            need = RequiredApproval(decision.owner, decision.approval)
            require_approvals(
                [need],
                order.approvals,
                plan.plan_hash,
                self.ca,
                now,
                trust_domain=self.trust_domain,
                query_id=order.query_id,  # a decision approves the one query it was given on
            )
        return self._take(order, key, charges, synced)

    def _take(self, order: ExecutionOrder, key: str, charges: list[Charge], synced: bool) -> Taken:
        plan, day = order.plan, self.usage.today()
        limit = self.policy.datasets[plan.dataset].max_queries_per_day
        # a charge's commit syncs the count too: both ledgers are in one file
        if not self.usage.record_if_below(key, limit, day, durable=synced and not charges):
            raise BudgetExhaustedError(
                f"refused by rule dataset.daily_limit: {self.name} allows "
                f"{plan.analyst} {limit} queries a day on {plan.dataset!r}, all taken",
                rule="dataset.daily_limit",
            )
        slot = f"{order.query_id}/{order.lane}/{order.epoch}/{order.sequence}"
        taken = Taken(key, day, slot, bool(charges))
        try:
            if charges:
                self.privacy.charge(taken.order, charges)
        except BudgetExhaustedError:
            self.usage.release(key, 1, day)
            raise
        return taken

    def give_back(self, taken: Taken) -> None:
        """An order this node did not complete released nothing: it counts nowhere."""
        self.usage.release(taken.key, 1, taken.day)
        if taken.charged:
            self.privacy.refund(taken.order)
