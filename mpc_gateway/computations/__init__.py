"""The computations the consortium can run, one module each, and the registry that finds them.

* :mod:`~mpc_gateway.computations.aggregate`: joint aggregate tables (count,
  sum, mean, variance, deviation, min, max per group);
* :mod:`~mpc_gateway.computations.score`: entity scores with a registered model;
* :mod:`~mpc_gateway.computations.concentration`: large-exposure flags and HHI;
* :mod:`~mpc_gateway.computations.quantile`: exact joint quantiles;
* :mod:`~mpc_gateway.computations.histogram`: joint bin counts;
* :mod:`~mpc_gateway.computations.check`: real-time entity checks (flagged, members).
* :mod:`~mpc_gateway.computations.train`: ridge and logistic models trained in the MPC.

What every computation owns is in :mod:`~mpc_gateway.computations.base`. To add
one: write its module (request, plan, outcome, a :class:`Computation`), its MPC
program in :mod:`mpc_gateway.mpc.programs`, its job message in ``protos/``,
register it in :data:`~mpc_gateway.computations.registry.COMPUTATIONS`, and give
it a CLI verb.
Nothing else needs to know it exists.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mpc_gateway.computations.registry import (
        COMPUTATIONS,
        MAX_STATEMENT_CHARS,
        VOCABULARY,
        AggregatePlan,
        AggregateRequest,
        Blocks,
        Computation,
        Execution,
        LocalData,
        NoModels,
        Outcome,
        Plan,
        Planning,
        ProgramCall,
        Released,
        Request,
        build,
        computation,
        computation_of,
        plan_from_dict,
        plan_from_json,
    )

__all__ = [
    "COMPUTATIONS",
    "VOCABULARY",
    "Blocks",
    "Computation",
    "Execution",
    "LocalData",
    "Outcome",
    "Plan",
    "Planning",
    "ProgramCall",
    "MAX_STATEMENT_CHARS",
    "Released",
    "Request",
    "AggregatePlan",
    "AggregateRequest",
    "computation",
    "computation_of",
    "plan_from_dict",
    "plan_from_json",
    "build",
    "NoModels",
]


def __getattr__(name: str) -> Any:
    """The registry's names, loaded on first use (a submodule alone loads nothing else)."""
    if name in __all__:
        return getattr(importlib.import_module("mpc_gateway.computations.registry"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
