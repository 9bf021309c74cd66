"""Differential privacy: what noisy releases cost, the noise itself, and who has spent what.

* :mod:`~mpc_gateway.privacy.accounting`: zero-concentrated DP (zCDP, ρ) of
  discrete Gaussian releases, noise scales calibrated to a budget, (ε, δ) for
  display; the arithmetic is OpenDP's;
* :mod:`~mpc_gateway.privacy.noise`: a node's share of the noise, drawn with
  OpenDP's exact integer sampler (no floating-point sampler);
* :mod:`~mpc_gateway.privacy.ledger`: per-owner budgets per analyst and for all
  analysts per period, durable in SQLite and enforced with OpenDP's privacy
  filters (fully adaptive composition).

How the pieces make a query differentially private, and the exact statement, is
in ``docs/privacy.md``.
"""

from mpc_gateway.privacy.accounting import (
    DEFAULT_DELTA,
    NoisyRelease,
    calibrate,
    epsilon_for,
    release_cost,
)
from mpc_gateway.privacy.ledger import Charge, PrivacyLedger, period_of
from mpc_gateway.privacy.noise import MAX_SCALE, sample

__all__ = [
    "DEFAULT_DELTA",
    "NoisyRelease",
    "calibrate",
    "epsilon_for",
    "release_cost",
    "MAX_SCALE",
    "sample",
    "Charge",
    "PrivacyLedger",
    "period_of",
]
