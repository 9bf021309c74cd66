"""A statement's aliases, ORDER BY and LIMIT, applied by the receiver to what was released.

These never reach the plan: the nodes compute and release every cell of the
declared domain, and the receiver then renames, sorts and cuts the released
table. Sorting sees released values only: a withheld cell (no values) sorts
last whatever the direction, like SQL's NULLS LAST, and group values sort as text.
The audit log's digest covers the table as released, before any of this.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

from mpc_gateway.computations import Released
from mpc_gateway.computations.aggregate_result import AggregateOutcome
from mpc_gateway.sql.statement import Statement

__all__ = ["present"]


def _sorted(outcome: AggregateOutcome, statement: Statement) -> list[int]:
    """The order of the outcome's rows under the statement's ORDER BY (stable)."""
    records = outcome.records()
    order = list(range(len(records)))
    for key in reversed(statement.order):
        present = [i for i in order if records[i].get(key.column) is not None]
        missing = [i for i in order if records[i].get(key.column) is None]

        def value(i: int, column: str = key.column) -> Any:
            found = records[i][column]
            return found if isinstance(found, str) else Decimal(str(found))

        present.sort(key=value, reverse=key.descending)
        order = present + missing
    return order


def _renamed(outcome: AggregateOutcome, names: dict[str, str]) -> AggregateOutcome:
    def name(column: str) -> str:
        return names.get(column, column)

    return dataclasses.replace(
        outcome,
        group_by=None if outcome.group_by is None else name(outcome.group_by),
        columns=tuple(name(c) for c in outcome.columns),
        group_columns=tuple(name(c) for c in outcome.group_columns),
    )


def present(released: Released, statement: Statement) -> Released:
    """``released`` as the statement asks to see it: aliases, ORDER BY, LIMIT."""
    outcome = released.outcome
    if not isinstance(outcome, AggregateOutcome):
        return released
    order = _sorted(outcome, statement)
    if statement.limit is not None:
        order = order[: statement.limit]
    kept = {outcome.rows[i][0] for i in order}
    shaped = dataclasses.replace(
        outcome,
        rows=tuple(outcome.rows[i] for i in order),
        cells=tuple(outcome.cells[i] for i in order) if outcome.cells else (),
        suppressed={g: r for g, r in outcome.suppressed.items() if g in kept},
    )
    return dataclasses.replace(released, outcome=_renamed(shaped, statement.names))
