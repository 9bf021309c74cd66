"""Output controls: the disclosure rules every released cell must pass.

One model for policies and plans: a policy states the controls it requires, the
gateway dispatches a plan carrying the strictest of every governing policy's,
and each node checks that the plan's are at least as strict as its own.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["OutputControls"]


class OutputControls(BaseModel):
    """Disclosure controls applied to every released cell (inside the MPC where they decide).

    A cell is released only if it has at least ``min_cell_count`` records, records
    from at least ``min_institutions`` institutions, and (with ``dominance_percent``)
    no institution holds more than that share of any released sum. Released counts
    are rounded to a multiple of ``round_counts_to``, released sums to ``sum_decimals``
    places (inside the MPC, after the rules decided on the exact figures; under DP the
    noisy figures are rounded by the receiver), and
    everything derived from them (means, deviations) is computed from the rounded
    figures. A withheld cell is reported as withheld; which rules it failed only
    with ``report_rules``.

    With ``dp_rho``, every released number carries discrete Gaussian noise drawn
    inside the MPC, calibrated so that the whole query costs at most ρ
    (zero-concentrated DP; see ``docs/privacy.md``).

    A job over a batch of entity keys (scores, concentration) releases anything
    only if at least ``min_entities`` of the batch's entities are known to the
    institutions, decided inside the MPC (the largest ``min_batch`` of the
    policies' risk sections).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_cell_count: int = Field(default=0, ge=0)
    min_institutions: int = Field(default=0, ge=0)
    dominance_percent: int | None = Field(default=None, ge=1, le=100)
    round_counts_to: int = Field(default=1, ge=1)
    sum_decimals: int | None = Field(default=None, ge=0, le=6)
    report_rules: bool = False
    dp_rho: Decimal | None = Field(default=None, gt=0, le=10)
    min_entities: int = Field(default=1, ge=1)

    @property
    def evaluated_in_mpc(self) -> bool:
        return (
            self.min_cell_count > 1
            or self.min_institutions > 1
            or self.dominance_percent is not None
        )

    def stricter(self, other: OutputControls) -> OutputControls:
        """The strictest of both, rule by rule."""

        def lowest(a: int | None, b: int | None) -> int | None:
            present = [v for v in (a, b) if v is not None]
            return min(present) if present else None

        rhos = [r for r in (self.dp_rho, other.dp_rho) if r is not None]
        return OutputControls(
            min_cell_count=max(self.min_cell_count, other.min_cell_count),
            min_institutions=max(self.min_institutions, other.min_institutions),
            dominance_percent=lowest(self.dominance_percent, other.dominance_percent),
            round_counts_to=max(self.round_counts_to, other.round_counts_to),
            sum_decimals=lowest(self.sum_decimals, other.sum_decimals),
            report_rules=self.report_rules and other.report_rules,
            dp_rho=min(rhos) if rhos else None,
            min_entities=max(self.min_entities, other.min_entities),
        )

    def at_least_as_strict_as(self, other: OutputControls) -> bool:
        return self.stricter(other) == self
