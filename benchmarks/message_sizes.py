"""The largest legitimate messages, measured: ``python -m benchmarks.message_sizes``.

What the per-method request limits of :mod:`mpc_gateway.rpc.limits` must admit
(docs/limits.md): a score batch's request (keys of LEI length and of the longest
allowed length), a secret-weight model's registration (every registered feature, the widest
weights, sealed to ``--nodes`` nodes of a throwaway PKI), and a node's result
shares for a large batch (values of a 127-bit field, as the wire carries them).
Prints each size beside the limit that applies.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
from pathlib import Path

from mpc_gateway.computations import computation
from mpc_gateway.computations.features import FEATURES
from mpc_gateway.computations.scoring import ModelFeature, ScoringModel, seal_model_weights
from mpc_gateway.pki import Identity, init_consortium, load_layout
from mpc_gateway.proto.v1 import gateway_pb2, node_pb2
from mpc_gateway.rpc.limits import RESPONSE_BYTES, request_limit

_GATEWAY = "/mpc_gateway.proto.v1.GatewayService/"


def score_request(keys: int, key_chars: int) -> int:
    job = computation("score").job_message(
        model_id="0" * 64, keys=[str(i).zfill(key_chars) for i in range(keys)]
    )
    message = gateway_pb2.ComputationRequest(
        dataset="loans", purpose="p" * 500, where="", score=job
    )
    return message.ByteSize()


def watchlist_request(keys: int, key_chars: int) -> int:
    job = computation("check").job_message(
        keys=[str(i).zfill(key_chars) for i in range(keys)], question="overlap"
    )
    message = gateway_pb2.ComputationRequest(
        dataset="alerts", purpose="p" * 500, where="", check=job
    )
    return message.ByteSize()


def sealed_registration(nodes: int) -> int:
    names = [f"node-{i}" for i in range(nodes)]
    with tempfile.TemporaryDirectory() as tmp:
        init_consortium(Path(tmp), nodes=names)
        layout = load_layout(Path(tmp))
        certs = {
            n: layout.tls_paths(Identity("node", n, layout.trust_domain))[0].read_bytes()
            for n in names
        }
        features = tuple(ModelFeature(name=name) for name in FEATURES)  # each at most once
        model = ScoringModel(
            owner="risk-office@bank-a",
            name="widest",
            kind="linear",
            features=features,
            weight_bits=128,
            weights_secret=True,
            output="scores",
        )
        bound = 1 << 127
        weights = [secrets.randbelow(bound) for _ in features]
        sealed = seal_model_weights(model, weights, secrets.randbelow(bound), certs)
    message = gateway_pb2.RegisterModelRequest(
        model_json=model.model_dump_json(), sealed_weights_json=sealed.model_dump_json()
    )
    return message.ByteSize()


def result_shares(entities: int, blocks: int) -> int:
    modulus = str(2**127 - 1)
    shares = [
        node_pb2.ShareBlock(
            name=f"block{b}",
            modulus=modulus,
            values=[str(secrets.randbelow(2**127)) for _ in range(entities)],
        )
        for b in range(blocks)
    ]
    return node_pb2.ResultShares(node="bank-a", blocks=shares).ByteSize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=8)
    args = parser.parse_args()
    run = request_limit(_GATEWAY + "Run")
    rows = [
        ("Run: 10,000 LEIs (20 chars)", score_request(10_000, 20), run),
        ("Run: 10,000 keys of 128 chars", score_request(10_000, 128), run),
        ("Run: 100,000 LEIs", score_request(100_000, 20), run),
        ("Run: a watchlist of 1,000,000 LEIs (overlap)", watchlist_request(1_000_000, 20), run),
        ("Run: a watchlist of 500,000 pseudonyms", watchlist_request(500_000, 64), run),
        (
            f"RegisterModel: {len(FEATURES)} secret 128-bit weights, {args.nodes} nodes",
            sealed_registration(args.nodes),
            request_limit(_GATEWAY + "RegisterModel"),
        ),
        ("ResultShares: 100,000 entities, 1 block", result_shares(100_000, 1), RESPONSE_BYTES),
    ]
    for what, size, limit in rows:
        print(f"{what:<60} {size:>12,} bytes   limit {limit:>12,}   {size / limit:6.1%}")


if __name__ == "__main__":
    main()
