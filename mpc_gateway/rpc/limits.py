"""How big a request may be, per method, and how clients and servers keep connections alive.

Both are transport policy, kept in this one module so that the server builder
and every client channel agree. docs/limits.md explains the numbers.

Request sizes: every method has a limit on the serialized request
(:func:`request_limit`). A server's gRPC transport refuses anything above the
largest limit of the methods it serves before any code runs; the access
interceptor refuses anything above its own method's limit. Both end the call
with RESOURCE_EXHAUSTED. The large cases, measured with
``benchmarks/message_sizes.py``: a score batch of 10,000 keys of the longest
allowed length (128 characters) is 1.3 MB, 100,000 LEIs 2.2 MB, a watchlist of
1,000,000 LEIs (an overlap check) 22 MB; a secret-weight
model's registration sealed to 8 nodes 8 KB; an execution
order carries that plan to every node; a node's result shares for 100,000
entities are about 4 MB per released block.

Keepalive: a client pings an idle or long-running connection every
``keepalive_ms`` (30 s by default); a server must accept pings that often, or
gRPC's default server policy (one ping per 5 minutes without data) answers
a long call with GOAWAY "too_many_pings" and the call ends UNAVAILABLE.
"""

from __future__ import annotations

__all__ = [
    "KEEPALIVE_MS",
    "DEFAULT_REQUEST_BYTES",
    "REQUEST_BYTES",
    "RESPONSE_BYTES",
    "request_limit",
    "server_receive_limit",
    "client_options",
    "server_options",
    "too_large_message",
]

KiB = 1024
MiB = 1024 * KiB

KEEPALIVE_MS = 30_000
"""How often a client pings a connection (and how often a server lets it)."""

DEFAULT_REQUEST_BYTES = 16 * KiB
"""The limit of every method :data:`REQUEST_BYTES` does not name (lists, status, audit reads)."""

REQUEST_BYTES: dict[str, int] = {
    # analysts: a score batch carries its entity keys, a watchlist up to a million LEIs
    "/mpc_gateway.proto.v1.GatewayService/Run": 32 * MiB,
    "/mpc_gateway.proto.v1.GatewayService/Explain": 32 * MiB,
    # a model (each registered feature at most once) and one sealed weight vector per node:
    # 8 KB for 128-bit weights sealed to 8 nodes
    "/mpc_gateway.proto.v1.GatewayService/RegisterModel": 64 * KiB,
    # persons' pseudonyms: at most oprf.MAX_POINTS blinded ids of 32 bytes (68 KB), and to a
    # node the gateway's audit evidence besides
    "/mpc_gateway.proto.v1.GatewayService/Pseudonymise": 128 * KiB,
    "/mpc_gateway.proto.v1.NodeService/Pseudonymise": 256 * KiB,
    # a signed decision carries the approver's certificate (16 KiB at most)
    "/mpc_gateway.proto.v1.ApprovalService/Decide": 64 * KiB,
    # the gateway to a node: an order carries the plan, keys included, and the audit evidence
    "/mpc_gateway.proto.v1.NodeService/Execute": 48 * MiB,
    # a batch of small orders (gateway.dispatch.BATCH_BYTES of orders, then their evidence)
    "/mpc_gateway.proto.v1.NodeService/ExecuteBatch": 8 * MiB,
    # releases under one checkpoint (gateway.relay.RELEASE_BATCH of them), each within what
    # a release alone may be (the default limit)
    "/mpc_gateway.proto.v1.NodeService/ReleaseBatch": 1 * MiB,
}
"""Request size limits, by full method name, in bytes of the serialized request."""

RESPONSE_BYTES = 64 * MiB
"""What a client accepts in a reply: a node's result shares, a large batch's scores."""


def request_limit(method: str) -> int:
    """The largest request ``method`` (``/package.Service/Method``) accepts, in bytes."""
    return REQUEST_BYTES.get(method, DEFAULT_REQUEST_BYTES)


def server_receive_limit(methods: list[str]) -> int:
    """The transport's limit for a server of ``methods``: the largest of their limits."""
    return max([DEFAULT_REQUEST_BYTES, *(request_limit(m) for m in methods)])


def too_large_message(method: str, size: int | None, limit: int) -> str:
    """What a caller is told about a request over ``limit`` bytes."""
    short = method.rsplit("/", 1)[-1] or method
    got = f"{size} bytes" if size is not None else "a request"
    return (
        f"{short} accepts requests of at most {limit} bytes; got {got}. "
        "Split the request (a score batch into smaller batches) or shorten its text fields"
    )


def client_options(keepalive_ms: int = KEEPALIVE_MS) -> list[tuple[str, int]]:
    """Channel options every client uses: reply size and keepalive."""
    return [
        ("grpc.max_receive_message_length", RESPONSE_BYTES),
        ("grpc.max_send_message_length", RESPONSE_BYTES),
        ("grpc.keepalive_time_ms", keepalive_ms),
        ("grpc.keepalive_timeout_ms", max(1000, min(20_000, keepalive_ms))),
        # keep pinging during a long call that sends no data (a quantile search, a risk batch)
        ("grpc.http2.max_pings_without_data", 0),
    ]


def server_options(methods: list[str], keepalive_ms: int = KEEPALIVE_MS) -> list[tuple[str, int]]:
    """Server options: request size, and a ping policy that admits :func:`client_options`."""
    return [
        ("grpc.max_receive_message_length", server_receive_limit(methods)),
        ("grpc.max_send_message_length", RESPONSE_BYTES),
        # half the clients' interval: timer jitter never turns a client's ping into a strike
        ("grpc.http2.min_ping_interval_without_data_ms", keepalive_ms // 2),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_ping_strikes", 2),
    ]
