"""The no-privacy oracle of joint training: statsmodels fitted on the pooled rows.

The penalty convention of :mod:`mpc_gateway.computations.train`: the loss summed
over rows plus ``(l2/2) * sum_j (sigma_j * beta_j)**2`` over the non-intercept
columns, sigma_j the pooled population deviation; the intercept unpenalised.
Ridge: ``OLS.fit_regularized(L1_wt=0)`` minimises ``||y - Xb||**2 / (2n) +
sum_j alpha_j b_j**2 / 2``, its exact closed form, so ``alpha_j = l2 sigma_j**2 / n``.
Logistic: statsmodels' penalised ``Logit`` (``PenalizedMixin`` with an ``L2``
penalty of weights ``l2 sigma_j**2 / 2``, ``pen_weight=1``) minimises exactly
our objective, by Newton's method. Both are fitted on the standardised
pooled design and mapped back to the columns' units.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from statsmodels.base._penalized import PenalizedMixin
from statsmodels.base._penalties import L2
from statsmodels.discrete.discrete_model import Logit
from statsmodels.regression.linear_model import OLS

__all__ = ["pooled_fit", "relative_error"]


class _PenalisedLogit(PenalizedMixin, Logit):  # type: ignore[misc]
    pass


def pooled_fit(
    design: np.ndarray, label: np.ndarray, family: str, l2: Decimal | float
) -> np.ndarray:
    """The coefficients statsmodels fits on the pooled ``design`` (intercept first).

    It fits the standardised design (well conditioned even where a column is nearly
    constant), penalising every non-intercept coefficient by ``l2``, and maps the
    coefficients back to the columns' units.
    """
    mean, deviation = design[:, 1:].mean(axis=0), design[:, 1:].std(axis=0)
    standard = np.column_stack([np.ones(len(label)), (design[:, 1:] - mean) / deviation])
    weights = np.concatenate(([0.0], np.full(len(mean), float(l2))))
    if family == "linear":
        fitted = OLS(label, standard).fit_regularized(alpha=weights / len(label), L1_wt=0.0)
        params = np.asarray(fitted.params)
    else:
        model = _PenalisedLogit(label, standard, penal=L2(weights=weights / 2), pen_weight=1.0)
        params = np.asarray(model.fit(method="newton", maxiter=100, disp=False).params)
    slopes = params[1:] / deviation
    return np.concatenate(([params[0] - float(slopes @ mean)], slopes))


def relative_error(found: np.ndarray, expected: np.ndarray) -> float:
    """The largest error relative to each coefficient's size (its absolute error below 1e-9)."""
    scale = np.maximum(np.abs(expected), 1e-9)
    return float(np.max(np.abs(np.asarray(found) - expected) / scale))
