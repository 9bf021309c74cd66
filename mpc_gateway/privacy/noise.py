"""A node's share of the noise: exact discrete Gaussian integers from OpenDP's sampler.

Every node adds, to each noisy value it inputs to the MPC, a sample of the
*full* scale σ of that release (not a fraction of it). The MPC adds every
node's input up, so the released value carries the sum of m independent
samples: whatever up to m−1 colluding nodes subtract of their own, one honest
node's sample remains, and the release is a post-processing of the discrete
Gaussian mechanism of scale σ (see ``docs/privacy.md``).

The sampler is OpenDP's exact one over 64-bit integers; scales above
:data:`MAX_SCALE` are refused (a computation releases such a quantity in coarser
units instead), so a sample never nears the integer range.
"""

from __future__ import annotations

import functools

import numpy as np
import opendp.prelude as dp

from mpc_gateway.errors import InvalidQueryError

__all__ = ["MAX_SCALE", "TAIL", "sample"]

dp.enable_features("contrib")

MAX_SCALE = 1e15
"""Largest noise scale sampled; 9·10¹⁸ (the i64 range) is 9,000 of them away."""

TAIL = 64
"""How many scales a sample stays within, but for probability below 2⁻¹⁰⁰⁰ (bit lengths use it)."""


def sample(scale: float, count: int) -> np.ndarray:
    """``count`` independent discrete Gaussian samples of scale σ, as Python ints."""
    if not 0 < scale <= MAX_SCALE:
        raise InvalidQueryError(f"noise scale {scale:g} is outside (0, {MAX_SCALE:g}]")
    if count == 0:
        return np.zeros(0, dtype=object)
    noisy = _sampler(scale)([0] * count)
    return np.array([int(v) for v in noisy], dtype=object)


@functools.lru_cache(maxsize=1024)
def _sampler(scale: float) -> dp.Measurement:
    """OpenDP's discrete Gaussian mechanism of scale σ on integer vectors (built once)."""
    domain = dp.vector_domain(dp.atom_domain(T="i64"))
    return dp.m.make_gaussian(domain, dp.l2_distance(T="i64"), scale=scale)
