"""Scoring models over cross-institution features, and their exact integer layout.

A :class:`ScoringModel` is public metadata (owner, features, normalisation,
fixed-point format, threshold, what to release); its weights are either in it
(``weights_secret=False``) or sealed per node (:mod:`mpc_gateway.pki.sealing`).
:class:`ModelBook` is where a planner finds registered models (the gateway's
registry); :func:`score_layout` fixes the MPC's shape and bit lengths.

Integer scoring, exactly. Feature j enters the model as ``x_j / scale_j`` (its
registry value, e.g. exposure in cents, over a public normalisation such as
``100_000_000`` for EUR millions); weights and intercept are fixed-point
integers with ``frac_bits`` fraction bits. With ``L = lcm(scale_j)`` and
``D = 2**frac_bits * L`` the MPC computes the integer score

    S = sum_j w_j * (L / scale_j) * x_j + c * L,      real score = S / D,

with no truncation anywhere. A decision compares ``S >= T`` with
``T = ceil(threshold * D)`` (linear), or ``T = ceil(logit(p) * D)`` for a
logistic model with probability threshold p: ``sigmoid(s) >= p`` iff
``s >= logit(p)``, so no secure sigmoid is needed.

Bit lengths (the bound computation). With ``B_j`` the declared bound of the
combined feature (schema bounds times ``max_rows_per_node``, times m for sums;
see :mod:`mpc_gateway.computations.features`), ``W_j = |w_j|`` (public weights) or
``2**weight_bits - 1`` (secret weights), likewise ``C`` for the intercept:

    A = sum_j W_j * B_j * (L / scale_j) + C * L        bounds |S|
    score_bits = bit_length(A + |T|) + 1               so -2**(l-1) <= S - T < 2**(l-1)
    max_bits_j = bit_length(2 * B_j) + 1               per max-feature j (1 for a 0/1
                                                       feature: its maximum is an OR)
    bits = max(score_bits, max_j max_bits_j)           the SecInt's l

MPyC's field for ``SecInt(l)`` has about ``l + 32`` bits, enough headroom for its
statistically hiding comparisons at ``l``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, localcontext
from fractions import Fraction
from functools import reduce
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mpc_gateway.canonical import canonical_hash
from mpc_gateway.computations.features import FEATURES, feature_spec
from mpc_gateway.errors import InvalidRequestError
from mpc_gateway.pki.sealing import (
    SealedWeights,
    decrypt_share,
    node_certificates,
    seal_shares,
    split_secret_weights,
)
from mpc_gateway.policy.models import MAX_BATCH
from mpc_gateway.query.schema import DatasetSchema

__all__ = [
    "ModelFeature",
    "ScoringModel",
    "ModelBook",
    "ModelCatalog",
    "ScoreLayout",
    "score_layout",
    "check_scorable",
    "seal_model_weights",
    "seal_for_consortium",
    "open_weight_share",
]

_NAME = r"^[a-z_][a-z0-9_-]{0,62}$"
MAX_THRESHOLD_DIGITS = 30
"""A threshold has fewer than this many integer digits and at most this many decimal places."""
MAX_SCORE_BITS = 512
"""The widest integer score a model may need over a dataset (the MPC's cost grows with it)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelFeature(_Frozen):
    """One model input: a registered feature divided by a public normalisation."""

    name: str
    scale: int = Field(default=1, ge=1, le=10**18)

    @model_validator(mode="after")
    def _registered(self) -> ModelFeature:
        if self.name not in FEATURES:
            raise ValueError(f"unknown risk feature {self.name!r}; known: {', '.join(FEATURES)}")
        return self


class ScoringModel(_Frozen):
    """A linear or logistic scoring model; weights in the clear or sealed per node."""

    owner: str = Field(min_length=1, max_length=200)
    name: str = Field(pattern=_NAME)
    kind: Literal["linear", "logistic"]
    features: tuple[ModelFeature, ...] = Field(min_length=1, max_length=64)
    frac_bits: int = Field(default=16, ge=0, le=64)
    weight_bits: int = Field(default=32, ge=1, le=128)
    """Declared bound: every weight and the intercept satisfy ``|w| < 2**weight_bits``."""
    weights_secret: bool = False
    weights: tuple[int, ...] | None = None
    intercept: int | None = None
    threshold: Decimal | None = None
    """A probability in (0, 1) for a logistic model; a real score for a linear one."""
    output: Literal["scores", "decisions", "count"] = "decisions"

    @model_validator(mode="after")
    def _consistent(self) -> ScoringModel:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError("each feature may appear only once")
        if self.weights_secret:
            if self.weights is not None or self.intercept is not None:
                raise ValueError("a model with secret weights must not carry weights")
        else:
            if self.weights is None or self.intercept is None:
                raise ValueError("public weights and intercept are required")
            if len(self.weights) != len(self.features):
                raise ValueError("one weight per feature is required")
            if any(abs(w) >= 1 << self.weight_bits for w in (*self.weights, self.intercept)):
                raise ValueError(f"every weight must satisfy |w| < 2**{self.weight_bits}")
        if self.output != "scores" and self.threshold is None:
            raise ValueError(f"output {self.output!r} needs a threshold")
        if self.threshold is not None:
            _check_threshold(self.threshold, self.kind)
        return self

    @property
    def model_id(self) -> str:
        """Hash of the public model (it binds sealed shares to exactly this model)."""
        return canonical_hash(self.model_dump(mode="json"))


def _check_threshold(threshold: Decimal, kind: str) -> None:
    """Bound a threshold's size before anything scales it (10**N is built otherwise)."""
    _, digits, exponent = threshold.as_tuple()
    assert isinstance(exponent, int)  # pydantic admits only finite decimals
    significant = "".join(map(str, digits)).rstrip("0")
    places = -(exponent + len(digits) - len(significant)) if significant else 0
    if threshold.adjusted() >= MAX_THRESHOLD_DIGITS or places > MAX_THRESHOLD_DIGITS:
        raise ValueError(
            f"a threshold must be below 10**{MAX_THRESHOLD_DIGITS} in size with at most "
            f"{MAX_THRESHOLD_DIGITS} decimal places"
        )
    if kind == "logistic" and not Decimal(0) < threshold < Decimal(1):
        raise ValueError("a logistic model's threshold is a probability in (0, 1)")


class ModelBook(Protocol):
    """Where registered models are found (the gateway's model registry)."""

    def model(self, model_id: str) -> ScoringModel:
        """The registered model; InvalidRequestError if there is none."""
        ...

    def sealed(self, model_id: str) -> SealedWeights | None:
        """A secret-weight model's sealed shares (None for public weights)."""
        ...


class ModelCatalog:
    """A model book of the models given (in memory): for planning without a gateway."""

    def __init__(self, *models: ScoringModel, sealed: Mapping[str, SealedWeights] | None = None):
        self._models = {m.model_id: m for m in models}
        self._sealed = dict(sealed or {})

    def model(self, model_id: str) -> ScoringModel:
        try:
            return self._models[model_id]
        except KeyError:
            raise InvalidRequestError(f"no registered model {model_id}") from None

    def sealed(self, model_id: str) -> SealedWeights | None:
        return self._sealed.get(model_id)


def _logit(p: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 80
        return (p / (1 - p)).ln()


def _threshold(model: ScoringModel, denominator: int) -> int:
    if model.output == "scores" or model.threshold is None:
        return 0
    if model.kind == "linear":
        return math.ceil(Fraction(model.threshold) * denominator)
    with localcontext() as ctx:
        ctx.prec = 80
        scaled = _logit(model.threshold) * denominator
        return int(scaled.to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True)
class ScoreLayout:
    """Everything the nodes and the receiver need to run and read one scoring job."""

    kind: str
    output: str
    features: tuple[str, ...]
    combine: tuple[str, ...]
    local_bounds: tuple[int, ...]
    multipliers: tuple[int, ...]  # L / scale_j
    common_scale: int  # L
    denominator: int  # D = 2**frac_bits * L: real score = S / D
    public_weights: tuple[int, ...] | None  # w_j * L / scale_j, then c * L
    threshold: int  # T, on the integer score
    bits: int
    score_bits: int
    max_bits: tuple[int, ...]  # per feature: 0 for a sum, 1 for a 0/1 maximum, else its l

    def program_args(
        self, features_local: np.ndarray, weight_share: Sequence[int] | None = None
    ) -> dict[str, Any]:
        """This node's arguments of ``entity_scores`` (its local features, its weight share)."""
        n = features_local.shape[0] if features_local.ndim == 2 else -1
        if features_local.shape != (n, len(self.features)) or not 1 <= n <= MAX_BATCH:
            raise InvalidRequestError(
                f"local features must be a [1..{MAX_BATCH}, {len(self.features)}] matrix"
            )
        if n and any(
            int(np.max(np.abs(features_local[:, j]))) > bound
            for j, bound in enumerate(self.local_bounds)
        ):
            raise InvalidRequestError("a local feature exceeds its declared bound")
        args: dict[str, Any] = {
            "features_local": np.asarray(features_local, dtype=object),
            "combine": self.combine,
            "bits": self.bits,
            "score_bits": self.score_bits,
            "max_bits": list(self.max_bits),
            "threshold": self.threshold,
            "output": self.output,
            "public_weights": None,
            "weight_parts": None,
        }
        if self.public_weights is not None:
            args["public_weights"] = list(self.public_weights)
        else:
            if weight_share is None or len(weight_share) != len(self.features) + 1:
                raise InvalidRequestError("a secret-weight model needs this node's weight share")
            scaled = [*self.multipliers, self.common_scale]
            args["weight_parts"] = [int(s) * m for s, m in zip(weight_share, scaled)]
        return args

    def score(self, value: int) -> Fraction:
        """The real (linear) score of a released integer score."""
        return Fraction(value, self.denominator)

    def probability(self, value: int) -> float:
        """sigmoid(score), computed in the clear by the receiver of a released score."""
        s = float(self.score(value))
        return 1 / (1 + math.exp(-s)) if s >= 0 else math.exp(s) / (1 + math.exp(s))


def check_scorable(model: ScoringModel, schemas: Sequence[DatasetSchema], parties: int) -> None:
    """InvalidRequestError unless ``model`` can be scored over one of ``schemas`` at least.

    What registration checks: a model whose features no dataset declares, or whose scores
    are too wide over every dataset, could never be used.
    """
    reasons = []
    for schema in schemas:
        try:
            score_layout(model, schema, parties)
            return
        except InvalidRequestError as err:
            reasons.append(err.public_message)
    raise InvalidRequestError(
        f"model {model.name!r} cannot score over any dataset: " + "; ".join(reasons or ["none"])
    )


def score_layout(model: ScoringModel, schema: DatasetSchema, parties: int) -> ScoreLayout:
    """The exact integer layout of ``model`` over ``schema`` with ``parties`` nodes."""
    specs = [feature_spec(f.name) for f in model.features]
    for spec in specs:
        spec.check_schema(schema)
    common = reduce(math.lcm, (f.scale for f in model.features), 1)
    multipliers = tuple(common // f.scale for f in model.features)
    denominator = (1 << model.frac_bits) * common
    threshold = _threshold(model, denominator)
    bounds = [spec.joint_bound(schema, parties) for spec in specs]
    if model.weights is not None and model.intercept is not None:
        weights, intercept = [abs(w) for w in model.weights], abs(model.intercept)
        public = (*(w * m for w, m in zip(model.weights, multipliers)), model.intercept * common)
    else:
        weights, intercept = (
            [(1 << model.weight_bits) - 1] * len(specs),
            (1 << model.weight_bits) - 1,
        )
        public = None
    score_bound = (
        sum(w * b * m for w, b, m in zip(weights, bounds, multipliers)) + intercept * common
    )
    score_bits = (score_bound + abs(threshold)).bit_length() + 1
    if score_bits > MAX_SCORE_BITS:
        raise InvalidRequestError(
            f"model {model.name!r} needs {score_bits}-bit scores over dataset {schema.name!r}; "
            f"at most {MAX_SCORE_BITS} are allowed (lower weight_bits, frac_bits, the feature "
            "scales or the threshold)"
        )
    max_bits = tuple(
        0
        if spec.combine == "sum"
        else 1
        if spec.is_binary(schema)
        else (2 * bound).bit_length() + 1
        for spec, bound in zip(specs, bounds)
    )
    return ScoreLayout(
        kind=model.kind,
        output=model.output,
        features=tuple(spec.name for spec in specs),
        combine=tuple(spec.combine for spec in specs),
        local_bounds=tuple(spec.local_bound(schema) for spec in specs),
        multipliers=multipliers,
        common_scale=common,
        denominator=denominator,
        public_weights=public,
        threshold=threshold,
        bits=max(score_bits, *max_bits, 2),
        score_bits=score_bits,
        max_bits=max_bits,
    )


def seal_model_weights(
    model: ScoringModel,
    weights: Sequence[int],
    intercept: int,
    node_certs: Mapping[str, bytes],
) -> SealedWeights:
    """At the model owner: split (weights, intercept) and seal one share vector per node.

    ``node_certs`` maps node name to its TLS certificate PEM, in party order.
    """
    if not model.weights_secret:
        raise InvalidRequestError("the model's weights are public: nothing to seal")
    if len(weights) != len(model.features):
        raise InvalidRequestError("one weight per feature is required")
    shares = split_secret_weights([*weights, intercept], len(node_certs), model.weight_bits)
    return seal_shares(shares, node_certs, model.model_id)


def seal_for_consortium(
    model: ScoringModel, weights: Sequence[int], intercept: int, pki: Path | str
) -> SealedWeights:
    """:func:`seal_model_weights` to the node certificates the consortium CA issued in ``pki``."""
    return seal_model_weights(model, weights, intercept, node_certificates(pki))


def open_weight_share(
    model: ScoringModel, sealed: SealedWeights, node: str, node_key_pem: bytes
) -> list[int]:
    """At a node: its own share vector (weights then intercept) of a secret-weight model."""
    if sealed.model_id != model.model_id:
        raise InvalidRequestError("the sealed weights belong to another model")
    share = decrypt_share(node_key_pem, node, model.model_id, sealed.for_node(node))
    if len(share) != len(model.features) + 1:
        raise InvalidRequestError("the sealed share does not match the model's features")
    return share
