"""One Python method per computation, as :class:`~mpc_gateway.client.GatewayClient` offers them.

Each only names its computation and its fields and calls ``run``: what a
computation takes is its job message's (:meth:`Computation.job_message`), and
the gateway validates everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from mpc_gateway.computations import Released

__all__ = ["ComputationCalls"]


class ComputationCalls:
    """The computations by name; a client provides :meth:`run`."""

    def run(
        self, kind: str, dataset: str, *, where: str = "", purpose: str | None = None, **fields: Any
    ) -> Released:
        raise NotImplementedError

    def query(
        self,
        dataset: str,
        aggregates: Sequence[str],
        *,
        where: str = "",
        group_by: str | Sequence[str] | None = None,
        purpose: str | None = None,
    ) -> Released:
        """A joint aggregate table; ``aggregates`` like ``["count", "mean:exposure"]``.

        ``group_by``: one categorical column, or several for a cross tab.
        """
        return self.run(
            "aggregate",
            dataset,
            where=where,
            purpose=purpose,
            aggregates=aggregates,
            group_by=group_by,
        )

    def score(
        self,
        dataset: str,
        model_id: str,
        keys: Sequence[str],
        *,
        key_column: str = "",
        where: str = "",
        purpose: str | None = None,
    ) -> Released:
        """Score ``keys`` with a registered model; it releases what the model declares."""
        return self.run(
            "score",
            dataset,
            where=where,
            purpose=purpose,
            model_id=model_id,
            keys=keys,
            key_column=key_column,
        )

    def concentration(
        self,
        dataset: str,
        *,
        keys: Sequence[str] = (),
        group_by: str = "",
        limit: str | Decimal | None = None,
        hhi: str = "",
        hhi_limit: int | None = None,
        column: str = "",
        where: str = "",
        purpose: str | None = None,
    ) -> Released:
        """Joint exposure per unit (``keys`` or ``group_by``): flags above ``limit``, the HHI."""
        return self.run(
            "concentration",
            dataset,
            where=where,
            purpose=purpose,
            keys=keys,
            group_by=group_by,
            limit=limit,
            hhi=hhi,
            hhi_limit=hhi_limit,
            column=column,
        )

    def quantiles(
        self,
        dataset: str,
        column: str,
        levels: Sequence[str],
        *,
        grid_size: int | None = None,
        interpolation: str = "discrete",
        where: str = "",
        purpose: str | None = None,
    ) -> Released:
        """Exact joint quantiles of ``column`` at ``levels`` (e.g. ``["0.5", "0.99"]``).

        ``interpolation="linear"`` interpolates between the neighbouring values
        (SQL's ``PERCENTILE_CONT``) instead of answering a value of the column.
        """
        return self.run(
            "quantile",
            dataset,
            where=where,
            purpose=purpose,
            column=column,
            levels=levels,
            grid_size=grid_size,
            interpolation="" if interpolation == "discrete" else interpolation,
        )

    def check(
        self,
        keys: Sequence[str],
        question: str = "flagged",
        *,
        dataset: str = "alerts",
        key_column: str = "",
        where: str = "",
        purpose: str | None = None,
        amount: bool = False,
    ) -> Released:
        """Per key whether any member flagged it; ``members``: by how many; ``overlap``: only
        how many of the keys any member flagged (a watchlist's overlap, one number), with
        ``amount`` also the members' alert amounts on the keys, summed."""
        return self.run(
            "check",
            dataset,
            where=where,
            purpose=purpose,
            keys=keys,
            key_column=key_column,
            question="" if question == "flagged" else question,
            amount=amount,
        )

    def histogram(
        self,
        dataset: str,
        column: str,
        edges: Sequence[str],
        *,
        where: str = "",
        purpose: str | None = None,
    ) -> Released:
        """Joint counts of ``column`` per bin between ``edges``."""
        return self.run(
            "histogram", dataset, where=where, purpose=purpose, column=column, edges=edges
        )

    def train(
        self,
        dataset: str,
        label: str,
        features: Sequence[str],
        *,
        kind: str = "logistic",
        l2: str | Decimal = "1",
        iterations: int | None = None,
        min_rows: int | None = None,
        min_institutions: int | None = None,
        holdout: str | Decimal | None = None,
        seed: int | None = None,
        where: str = "",
        purpose: str | None = None,
    ) -> Released:
        """Train a ``kind`` model (linear: ridge; logistic) of ``label`` on ``features``.

        The outcome holds the exact coefficients (intercept first, a dummy per level
        of a categorical feature but its first), as the policies allow; with ``holdout``
        (logistic), each node holds out that share of its rows (drawn with ``seed``) and
        the outcome's ``validation`` has the joint AUC, Gini, confusion counts and calibration.
        """
        return self.run(
            "train",
            dataset,
            where=where,
            purpose=purpose,
            label=label,
            features=features,
            family=kind,
            l2=l2,
            iterations=iterations,
            min_rows=min_rows,
            min_institutions=min_institutions,
            holdout=holdout,
            seed=seed,
        )
