"""Scoring models shared by the risk tests (weights in 16-bit fixed point)."""

from __future__ import annotations

from pathlib import Path

from mpc_gateway.computations.scoring import ModelFeature, ScoringModel, seal_model_weights
from mpc_gateway.pki import ConsortiumLayout, Identity
from mpc_gateway.pki.sealing import SealedWeights

FRAC_BITS = 16
NODES = ("bank-a", "bank-b", "broker-c")

# (feature, public scale, real weight): exposure in EUR millions, days past due in months
PD_MODEL = (
    ("total_exposure", 100_000_000, 0.012),
    ("lenders", 1, 0.3),
    ("max_days_past_due", 30, 0.2),
    ("any_default", 1, 1.5),
    ("worst_rating", 1, 0.25),
)
PD_INTERCEPT = -3.1


def fixed(value: float) -> int:
    return round(value * (1 << FRAC_BITS))


def weights_of(spec: tuple[tuple[str, int, float], ...]) -> list[int]:
    return [fixed(w) for _, _, w in spec]


def model(
    output: str,
    *,
    kind: str = "logistic",
    secret: bool = False,
    threshold: str | None = "0.3",
    spec: tuple[tuple[str, int, float], ...] = PD_MODEL,
    intercept: float = PD_INTERCEPT,
) -> ScoringModel:
    return ScoringModel(
        owner="risk-office@bank-a",
        name=f"pd-{kind}-{output}",
        kind=kind,  # type: ignore[arg-type]
        features=tuple(ModelFeature(name=n, scale=s) for n, s, _ in spec),
        frac_bits=FRAC_BITS,
        weight_bits=24,
        weights_secret=secret,
        weights=None if secret else tuple(weights_of(spec)),
        intercept=None if secret else fixed(intercept),
        threshold=threshold,  # type: ignore[arg-type]
        output=output,  # type: ignore[arg-type]
    )


def node_pem(pki: ConsortiumLayout, node: str) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) of a node's TLS identity."""
    cert, key = pki.tls_paths(Identity("node", node, pki.trust_domain))
    return Path(cert).read_bytes(), Path(key).read_bytes()


def seal(pki: ConsortiumLayout, secret_model: ScoringModel) -> SealedWeights:
    certs = {node: node_pem(pki, node)[0] for node in NODES}
    return seal_model_weights(secret_model, weights_of(PD_MODEL), fixed(PD_INTERCEPT), certs)
