"""Joint risk scores and portfolio risk across institutions (the parts without mpyc).

* :mod:`~mpc_gateway.risk.features`: the registry of cross-institution features
  and a node's local per-entity features for a batch of entity keys;
* :mod:`~mpc_gateway.risk.model`: scoring models, their exact integer plan and
  bit lengths; :mod:`~mpc_gateway.risk.sealed`: secret weights, split into
  additive shares sealed to each node's certificate key;
* :mod:`~mpc_gateway.risk.portfolio`: concentration (limits, HHI), histograms;
* :mod:`~mpc_gateway.risk.quantile`: exact joint quantiles by a batched search;
* :mod:`~mpc_gateway.risk.pseudonym`: keyed pseudonyms for persons (node-only key);
* :mod:`~mpc_gateway.risk.reference`: plaintext references, for tests and demos.

The MPC programs themselves are in :mod:`mpc_gateway.mpc.programs.risk`. What each
computation discloses, to whom, is in ``docs/risk.md``.
"""

from mpc_gateway.risk.features import FEATURES, FeatureSpec, feature_spec, local_entity_features
from mpc_gateway.risk.model import (
    ModelFeature,
    ScorePlan,
    ScoringModel,
    open_weight_share,
    plan_scores,
    seal_model_weights,
)
from mpc_gateway.risk.portfolio import (
    ConcentrationPlan,
    HistogramPlan,
    local_group_exposures,
    local_histogram,
    plan_concentration,
    plan_histogram,
)
from mpc_gateway.risk.quantile import (
    QuantilePlan,
    QuantileSearch,
    local_cumulative_counts,
    plan_quantiles,
    search_quantile,
    search_quantiles,
)
from mpc_gateway.risk.sealed import (
    SealedWeights,
    decrypt_share,
    encrypt_share,
    split_secret_weights,
)

__all__ = [
    "FEATURES",
    "FeatureSpec",
    "feature_spec",
    "local_entity_features",
    "ModelFeature",
    "ScoringModel",
    "ScorePlan",
    "plan_scores",
    "seal_model_weights",
    "open_weight_share",
    "SealedWeights",
    "split_secret_weights",
    "encrypt_share",
    "decrypt_share",
    "ConcentrationPlan",
    "HistogramPlan",
    "plan_concentration",
    "plan_histogram",
    "local_group_exposures",
    "local_histogram",
    "QuantilePlan",
    "QuantileSearch",
    "plan_quantiles",
    "local_cumulative_counts",
    "search_quantiles",
    "search_quantile",
]
