"""Building a mutual-TLS gRPC server with the standard health and reflection services.

Every service is served with its access rules (method name to the principals
that may call it); :class:`~mpc_gateway.rpc.interceptor.AccessInterceptor`
enforces them, default deny, for the whole server.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from mpc_gateway.lanes import SWITCH_INTERVAL_S
from mpc_gateway.rpc.drain import Gate
from mpc_gateway.rpc.interceptor import ANYONE, AccessInterceptor, RefusalHook
from mpc_gateway.rpc.limits import KEEPALIVE_MS, client_options, server_options

__all__ = [
    "Readiness",
    "Service",
    "TlsMaterial",
    "build_server",
    "client_channel",
    "serve_until_signalled",
]

log = logging.getLogger(__name__)

_ANSWER_S = 5.0  # after draining: for calls whose work has ended to send their answer

TlsMaterial = tuple[bytes, bytes, bytes]  # (ca, certificate chain, private key) PEM


@dataclass(frozen=True)
class Service:
    """One servicer to serve: how to add it, the servicer, its full proto name, who may call it.

    ``access`` maps each method name to the principals (``role/*``, ``role/name``)
    that may call it; a method it does not list is refused to everyone.
    """

    add: Callable[[Any, grpc.Server], None]
    servicer: Any
    name: str
    methods: tuple[str, ...]
    access: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        pb2: Any,
        pb2_grpc: Any,
        service: str,
        servicer: Any,
        access: Mapping[str, Sequence[str]],
    ) -> Service:
        """``service`` (e.g. "NodeService") of the generated modules, served by ``servicer``."""
        add = getattr(pb2_grpc, f"add_{service}Servicer_to_server")
        descriptor = pb2.DESCRIPTOR.services_by_name[service]
        methods = tuple(m.name for m in descriptor.methods)
        return cls(add, servicer, descriptor.full_name, methods, access)

    def rules(self) -> dict[str, Sequence[str]]:
        """The access rules by full method name (``/package.Service/Method``)."""
        return {f"/{self.name}/{m}": who for m, who in self.access.items() if m in self.methods}


_OPEN_SERVICES = (health.SERVICE_NAME, reflection.SERVICE_NAME)


def build_server(
    address: str,
    tls: TlsMaterial,
    services: Sequence[Service],
    trust_domain: str,
    max_workers: int = 64,
    gate: Gate | None = None,
    keepalive_ms: int = KEEPALIVE_MS,
    on_refusal: RefusalHook | None = None,
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """A bound (not yet started) mutual-TLS server with health and reflection; and its port.

    With ``gate``, every call but health and reflection is counted by it and refused once
    it is closed (see :func:`serve_until_signalled`). Requests are limited per method
    (:mod:`mpc_gateway.rpc.limits`); the server admits pings as often as clients built with
    the same ``keepalive_ms`` send them. ``on_refusal`` hears of every request refused as
    too large (the gateway logs it).
    """
    ca, cert, key = tls
    rules: dict[str, Sequence[str]] = {}
    for service in services:
        rules.update(service.rules())
    for name, methods in (
        (health.SERVICE_NAME, ("Check", "Watch", "List")),
        (reflection.SERVICE_NAME, ("ServerReflectionInfo",)),
    ):
        rules.update({f"/{name}/{method}": (ANYONE,) for method in methods})
    served = [f"/{s.name}/{m}" for s in services for m in s.methods]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
        interceptors=[AccessInterceptor(rules, trust_domain, gate, on_refusal)],
        options=server_options(served, keepalive_ms),
    )
    for service in services:
        service.add(service.servicer, server)
    names = [service.name for service in services]
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in (*names, ""):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((*names, *_OPEN_SERVICES), server)
    credentials = grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=True
    )
    port = server.add_secure_port(address, credentials)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return server, port, health_servicer


def client_channel(
    target: str,
    tls: TlsMaterial,
    server_name: str | None = None,
    keepalive_ms: int = KEEPALIVE_MS,
) -> grpc.Channel:
    """A mutual-TLS channel to ``target``; ``server_name`` overrides the name its certificate
    must carry."""
    ca, cert, key = tls
    options: list[tuple[str, str | int]] = [
        *client_options(keepalive_ms),
        # a node that restarts is usable again within a second, not after gRPC's default backoff
        # (not min_reconnect_backoff_ms: gRPC also uses it as the connection attempt's timeout)
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
    ]
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )
    return grpc.secure_channel(target, credentials, options=options)


class Readiness:
    """A server's health as the conditions keeping it from serving (none: SERVING).

    Each condition has a name (``"mpc:short"``: the short lane's MPC session is not open yet;
    ``"storage"``: the audit log cannot be written); the server reports
    NOT_SERVING, for every service, while any is held.
    """

    def __init__(self, health_servicer: health.HealthServicer, services: Sequence[str]) -> None:
        self._health = health_servicer
        self._names = (*services, "")
        self._held: dict[str, str] = {}
        self._lock = threading.Lock()

    def hold(self, condition: str, why: str) -> None:
        with self._lock:
            self._held[condition] = why
            self._publish()

    def release(self, condition: str) -> None:
        with self._lock:
            self._held.pop(condition, None)
            self._publish()

    def storage(self, problem: str | None) -> None:
        """Watches an audit log's storage (``AuditLog.watch_storage``)."""
        if problem is None:
            self.release("storage")
        else:
            self.hold("storage", problem)

    def recheck(self, condition: str, probe: Callable[[], object], every_s: float = 5.0) -> None:
        """While ``condition`` is held, call ``probe`` every ``every_s`` (a daemon thread).

        The probe releases the condition when it finds it gone (an audit log's
        ``recheck_storage``: the disk has room again), so health recovers by itself.
        """

        def loop() -> None:
            while True:
                time.sleep(every_s)
                if condition not in self.held:
                    continue
                try:
                    probe()
                except Exception:  # noqa: BLE001 - a closed store: the server is stopping
                    log.debug("recheck of %s failed", condition, exc_info=True)

        threading.Thread(target=loop, name=f"recheck-{condition}", daemon=True).start()

    @property
    def held(self) -> dict[str, str]:
        with self._lock:
            return dict(self._held)

    def _publish(self) -> None:
        status = (
            health_pb2.HealthCheckResponse.NOT_SERVING
            if self._held
            else health_pb2.HealthCheckResponse.SERVING
        )
        for name in self._names:
            self._health.set(name, status)


def serve_until_signalled(
    server: grpc.Server,
    health_servicer: health.HealthServicer,
    gate: Gate,
    drain: Callable[[float], None],
    grace_s: float,
) -> None:
    """Block until SIGTERM or SIGINT, then drain and stop.

    Draining: health turns NOT_SERVING and ``gate`` refuses every new call at once;
    ``drain(deadline)`` (a ``time.monotonic()`` value ``grace_s`` from now) lets the work
    under way finish by then, ends what cannot, and closes the service's stores; the
    server stops once the calls still answering have answered.
    """
    sys.setswitchinterval(SWITCH_INTERVAL_S)  # a call hops between threads: lanes.py says why
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # with a timeout: a signal delivered to another thread (one of gRPC's) does not wake a
    # main thread blocked without one, and Python runs handlers in the main thread only
    while not stop.wait(0.5):
        pass
    health_servicer.enter_graceful_shutdown()
    gate.close()
    log.info("draining %s: %d calls under way, %.0f s of grace", gate.what, gate.busy, grace_s)
    drain(time.monotonic() + grace_s)
    gate.wait_idle(_ANSWER_S)
    server.stop(grace=_ANSWER_S).wait()
    log.info("%s stopped", gate.what)
