"""The privacy cost of noisy integer releases, in zCDP, with OpenDP doing the arithmetic.

A computation under differential privacy releases integer vectors (counts, sums,
sums of squares, bin counts) each with discrete Gaussian noise. For a release of
l2 sensitivity Δ (how far adding or removing one record can move the vector)
and noise scale σ, OpenDP's discrete Gaussian mechanism is ρ = Δ²/(2σ²)-zCDP;
releases of one query compose by adding their ρ.

:func:`calibrate` gives every release of a query the scale ``σ_k = s·Δ_k`` with
the smallest common ``s`` whose total cost (OpenDP's map of each release,
composed) stays within the query's ρ. Scales are derived the same way at the
gateway and at every node from public inputs only (the plan's ρ and the
schema's bounds), so they never travel in an order.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import opendp.prelude as dp

from mpc_gateway.errors import InvalidQueryError

__all__ = [
    "DEFAULT_DELTA",
    "NoisyRelease",
    "calibrate",
    "release_cost",
    "epsilon_for",
    "privacy_map",
]

dp.enable_features("contrib", "honest-but-curious")

DEFAULT_DELTA = 1e-9
"""The δ at which costs are also shown as (ε, δ)-DP."""

_INTEGERS = (dp.vector_domain(dp.atom_domain(T="i64")), dp.l2_distance(T="i64"))


@dataclass(frozen=True)
class NoisyRelease:
    """One released integer vector: its l2 sensitivity per record and its noise scale σ.

    Both are in the integer steps the MPC adds up; ``unit`` is what one step is
    worth in the released quantity's own units (a cent of a EUR sum: 0.01).
    """

    name: str
    sensitivity: int
    scale: float
    unit: Decimal = Decimal(1)

    def in_units(self, unit: Decimal) -> NoisyRelease:
        return NoisyRelease(self.name, self.sensitivity, self.scale, unit)

    def shown(self) -> dict[str, str]:
        """Sensitivity and noise scale in the quantity's own units, for the dry run."""
        return {
            "release": self.name,
            "sensitivity": f"{self.sensitivity * self.unit:g}",
            "scale": f"{Decimal(repr(self.scale)) * self.unit:.6g}",
        }

    @property
    def rho(self) -> float:
        """Its zCDP cost, by OpenDP's discrete Gaussian privacy map."""
        gaussian = dp.m.make_gaussian(*_INTEGERS, scale=self.scale)
        return float(privacy_map(gaussian, self.sensitivity))


def release_cost(releases: Mapping[str, NoisyRelease] | list[NoisyRelease]) -> float:
    """The zCDP cost of releasing all of them (zCDP composes by adding)."""
    items = releases.values() if isinstance(releases, Mapping) else releases
    return math.fsum(r.rho for r in items)


def calibrate(rho: Decimal, sensitivities: Mapping[str, int]) -> dict[str, NoisyRelease]:
    """Scales ``σ_k = s·Δ_k``, the smallest common ``s`` for which the releases cost at most ρ.

    A pure function of public inputs, computed once per distinct query shape.
    """
    releases = _calibrated(rho, tuple(sensitivities.items()))
    return {release.name: release for release in releases}


@functools.lru_cache(maxsize=4096)
def _calibrated(
    rho: Decimal, sensitivities: tuple[tuple[str, int], ...]
) -> tuple[NoisyRelease, ...]:
    if rho <= 0:
        raise InvalidQueryError("a privacy budget per query must be positive")
    if not sensitivities:
        return ()
    if any(d <= 0 for _, d in sensitivities):
        raise InvalidQueryError("every noisy release needs a positive sensitivity")
    if any(d >= 2**62 for _, d in sensitivities):  # OpenDP's maps work in 64-bit integers
        raise InvalidQueryError("a sensitivity of 2^62 or more: release it in coarser units")
    target = float(rho)
    step = math.sqrt(len(sensitivities) / (2 * target))  # Σ Δ²/(2 s²Δ²) = K/(2s²) = ρ
    while True:
        releases = tuple(NoisyRelease(name, delta, step * delta) for name, delta in sensitivities)
        if release_cost(list(releases)) <= target:
            return releases
        step *= 1 + 1e-9  # OpenDP rounds its maps up: a hair more noise keeps within ρ


def epsilon_for(rho: float, delta: float = DEFAULT_DELTA) -> float:
    """The ε at which ρ-zCDP is (ε, δ)-DP (OpenDP's conversion)."""
    measurement = dp.m.make_user_measurement(
        _INTEGERS[0],
        _INTEGERS[1],
        dp.zero_concentrated_divergence(),
        function=lambda x: x,
        privacy_map=lambda d_in: rho,
    )
    curve = privacy_map(dp.c.make_zCDP_to_approxDP(measurement), 1)
    return float(curve.epsilon(delta))


def privacy_map(measurement: dp.Measurement, d_in: int) -> Any:
    """OpenDP's privacy map of ``measurement`` at ``d_in`` (its bindings leave ``map`` untyped)."""
    return measurement.map(d_in)  # type: ignore[no-untyped-call]
