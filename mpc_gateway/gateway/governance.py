"""The gateway's side of the data owners' conditions: policies, daily limits, privacy budgets.

The gateway evaluates the consortium's policy and every institution's published
policy before anything runs; the combined decision fixes the plan it dispatches
(with the strictest output controls, the privacy cost per query among them) and
the approvals it must collect. A plan under differential privacy is evaluated
once more as dispatched, against what every owner's budgets have left. Each
node re-checks its own policy, its own daily limit and its own privacy budget
on the signed order anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from mpc_gateway.computations import VOCABULARY
from mpc_gateway.errors import BudgetExhaustedError, ConfigurationError
from mpc_gateway.pki import Identity
from mpc_gateway.policy import (
    CombinedDecision,
    Policy,
    UsageLedger,
    combine,
    evaluate,
    load_policy,
    privacy_charges,
    usage_key,
)
from mpc_gateway.policy.declaration import Governed
from mpc_gateway.privacy import Charge, PrivacyLedger
from mpc_gateway.query.schema import DatasetSchema

__all__ = ["Governance", "Reservation", "BudgetLine"]

G = TypeVar("G", bound=Governed)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class BudgetLine:
    """One privacy budget as it stands: what it is, the period now, and what it spent."""

    charge: Charge
    period: str
    spent: Decimal

    @property
    def left(self) -> Decimal:
        return max(self.charge.budget - self.spent, Decimal(0))

    def as_dict(self) -> dict[str, str]:
        c = self.charge
        return {
            "owner": c.owner,
            "dataset": c.dataset,
            "holder": c.holder,
            "who": c.who,
            "period": c.period,
            "current": self.period,
            "rho": str(c.budget),
            "spent": str(self.spent),
            "left": str(self.left),
        }


@dataclass(frozen=True)
class Reservation:
    """What one query took of the daily limits and the privacy budgets, to give back on failure."""

    key: str
    steps: int
    day: date
    query_id: str
    charges: tuple[Charge, ...]

    def audit_view(self) -> list[dict[str, str]]:
        """What the query spends, as its submission's audit entry records it."""
        return [
            {"owner": c.owner, "budget": c.holder, "period": c.period, "rho": str(c.cost)}
            for c in self.charges
        ]


class Governance:
    """Every policy the gateway enforces, the daily usage and the privacy budgets."""

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
        self.privacy = PrivacyLedger(usage_db)  # same file: one sync for both

    def versions(self) -> dict[str, str]:
        return {policy.owner: policy.version_hash for policy in self.policies}

    def _spent(self, policy: Policy, plan: Governed, analyst: str) -> dict[str, Decimal]:
        """What each of ``policy``'s budgets for the plan's dataset spent this period."""
        return self.privacy.spent_by_holder(privacy_charges([policy], plan, analyst))

    def decide(self, caller: Identity, plan: G) -> CombinedDecision[G]:
        """Evaluate every policy; the combined decision (not yet raised if denied).

        A plan some policy puts under differential privacy is evaluated as it will
        run, at the cost per query of the strictest policy, against every budget.
        """
        now, analyst = _now(), str(caller)
        used = self.ledger.count(usage_key(plan.dataset, analyst))
        cost = self._cost(plan.dataset)
        if cost is None:
            return combine(evaluate(p, plan, caller, now, used) for p in self.policies)
        priced = plan.with_controls(plan.controls.model_copy(update={"dp_rho": cost}))
        return combine(
            evaluate(p, priced, caller, now, used, privacy_spent=self._spent(p, priced, analyst))
            for p in self.policies
        )

    def _cost(self, dataset: str) -> Decimal | None:
        """The privacy cost per query on ``dataset``: the smallest any policy sets, if any does."""
        costs = [
            rules.privacy.rho_per_query
            for p in self.policies
            if (rules := p.datasets.get(dataset)) is not None and rules.privacy is not None
        ]
        return min(costs, default=None)

    def _lines(self, charges: Iterable[Charge]) -> list[BudgetLine]:
        return [BudgetLine(c, self.privacy.period(c), self.privacy.spent(c)) for c in charges]

    def budgets(self, analyst: str, dataset: str | None = None) -> list[BudgetLine]:
        """Every privacy budget a query by ``analyst`` (on ``dataset``, or any) spends from."""
        return self._lines(
            charge
            for policy in self.policies
            for name, rules in sorted(policy.datasets.items())
            if rules.privacy is not None and dataset in (None, name)
            for charge in rules.privacy.charges(policy.owner, name, analyst, Decimal(0))
        )

    def costs(self, plan: Governed) -> list[BudgetLine]:
        """What ``plan`` would spend, budget by budget, with what each has left."""
        return self._lines(privacy_charges(self.policies, plan, plan.analyst))

    def _limit(self, dataset: str) -> int | None:
        limits = [
            d.max_queries_per_day
            for p in self.policies
            if (d := p.datasets.get(dataset)) is not None and d.max_queries_per_day
        ]
        return min(limits, default=None)

    def reserve(self, caller: Identity, plan: Governed, query_id: str, steps: int) -> Reservation:
        """Count the query's steps against the strictest daily limit and charge every budget.

        Both or neither: a budget that cannot pay gives the steps back.
        """
        key, day = usage_key(plan.dataset, str(caller)), self.ledger.today()
        limit = self._limit(plan.dataset)
        charges = privacy_charges(self.policies, plan, str(caller))
        if not self.ledger.record_if_below(key, limit, day, count=steps, durable=not charges):
            raise BudgetExhaustedError(
                f"refused by rule dataset.daily_limit: {caller} has used today's {limit} "
                f"queries on {plan.dataset!r} (this one takes {steps})",
                rule="dataset.daily_limit",
            )
        try:
            if charges:
                self.privacy.charge(query_id, charges)
        except BudgetExhaustedError:
            self.ledger.release(key, steps, day)
            raise
        return Reservation(key, steps, day, query_id, tuple(charges))

    def give_back(self, reservation: Reservation, steps_run: int) -> bool:
        """Return the steps a query did not run; its budget too if it released nothing (True)."""
        self.ledger.release(reservation.key, reservation.steps - steps_run, reservation.day)
        if steps_run == 0 and reservation.charges:
            self.privacy.refund(reservation.query_id)
            return True
        return False

    def close(self) -> None:
        self.ledger.close()
        self.privacy.close()
