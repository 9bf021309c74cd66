"""Every node in its own network namespace, on a bridge with private addresses.

:func:`node_namespaces` makes, as root, one network namespace per node and a
bridge in the calling (root) namespace; a veth pair joins each namespace to the
bridge, with the node at ``10.A.B.(i+2)/24`` and the root namespace at
``10.A.B.1`` (:attr:`NamespaceNetwork.host_address`, where the gateway, the
clients and any relay live). Nothing else is configured in a namespace, not even
its loopback: a process there that dialled 127.0.0.1 would fail, so a consortium
running this way is the test that nothing assumes loopback. Names carry the pid
and a counter; everything is torn down when the block ends, however it ends.

:func:`namespaced_consortium` starts a consortium (:mod:`~.localnet`'s
``prepare`` and :class:`~.localnet.LocalConsortium`) with each node inside its
namespace (``ip netns exec``); with ``relayed``, a :class:`~.relay.RelayProcess`
in the root namespace stands in front of every node's gRPC and MPC ports, so
that every hop between parties, and between the gateway and a node, crosses
the relay's delay once.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpc_gateway.devnet.configs import ConsortiumFiles, host_of, host_port
from mpc_gateway.devnet.localnet import DEFAULT_NODES, LocalConsortium, free_port, prepare
from mpc_gateway.devnet.relay import RelayProcess, Route
from mpc_gateway.settings import GatewaySettings, load_settings

__all__ = [
    "GATEWAY_ROUTE",
    "NamespaceNetwork",
    "NamespacedConsortium",
    "NetworkSetupError",
    "namespaced_consortium",
    "namespaces_unavailable",
    "node_namespaces",
    "relay_routes",
]

_RUNS = itertools.count()


class NetworkSetupError(RuntimeError):
    """An ``ip`` command failed: the message has the command and what it printed."""


def _ip(*args: str) -> None:
    command = ["ip", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise NetworkSetupError(
            f"`{' '.join(command)}` failed (exit {done.returncode}): {done.stderr.strip()}"
        )


def namespaces_unavailable() -> str | None:
    """Why network namespaces cannot be made here (not root, no iproute2, ...), or None."""
    if os.geteuid() != 0:
        return f"network namespaces need root (`ip netns add`); running as uid {os.geteuid()}"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2) to make network namespaces with"
    probe = f"mpcgw-probe-{os.getpid()}"
    try:
        _ip("netns", "add", probe)
        _ip("-n", probe, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1")
        _ip("-n", probe, "link", "add", "probe2", "type", "bridge")
    except NetworkSetupError as err:
        return str(err)
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


@dataclass(frozen=True)
class NamespaceNetwork:
    """The namespaces made for one run: which node is where."""

    token: str  # in every name made for this run
    prefix: str  # the /24's first three octets
    namespaces: dict[str, str]  # node -> its namespace

    @property
    def bridge(self) -> str:
        return f"mg{self.token}b"

    @property
    def host_address(self) -> str:
        """The root namespace's address on the bridge."""
        return f"{self.prefix}.1"

    def address(self, node: str) -> str:
        return f"{self.prefix}.{list(self.namespaces).index(node) + 2}"

    def launch(self) -> dict[str, tuple[str, ...]]:
        """Per node, the command that runs another inside its namespace."""
        return {node: ("ip", "netns", "exec", ns) for node, ns in self.namespaces.items()}

    def hosts(self) -> dict[str, str]:
        """Where each process listens: the gateway in the root namespace, each node in its own."""
        return {"gateway": self.host_address, **{n: self.address(n) for n in self.namespaces}}


def _free_prefix(token: str) -> str:
    """A 10.A.B /24 that no address or route here overlaps (derived from ``token``)."""
    shown = (
        subprocess.run(
            ["ip", "-4", "-o", "route", "show", "table", "all"], capture_output=True, text=True
        ).stdout
        + subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    )
    taken = []
    for word in shown.split():
        try:
            taken.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            continue
    for attempt in range(256):
        digest = hashlib.sha256(f"{token}/{attempt}".encode()).digest()
        candidate = ipaddress.ip_network(f"10.{64 + digest[0] % 128}.{digest[1]}.0/24")
        if not any(candidate.overlaps(net) for net in taken if net.prefixlen >= 8):
            return str(candidate.network_address).rsplit(".", 1)[0]
    raise NetworkSetupError("no free 10.x.y.0/24 for the namespaces' bridge")


@contextmanager
def node_namespaces(nodes: Sequence[str] = DEFAULT_NODES) -> Iterator[NamespaceNetwork]:
    """One namespace per node on a new bridge, until the block ends (then all gone)."""
    token = f"{os.getpid():x}{next(_RUNS):x}"
    net = NamespaceNetwork(
        token, _free_prefix(token), {n: f"mpcgw-{token}-{i}" for i, n in enumerate(nodes)}
    )
    with ExitStack() as undo:
        _ip("link", "add", net.bridge, "type", "bridge")
        undo.callback(_ip, "link", "del", net.bridge)
        _ip("addr", "add", f"{net.host_address}/24", "dev", net.bridge)
        _ip("link", "set", net.bridge, "up")
        for i, (node, ns) in enumerate(net.namespaces.items()):
            _ip("netns", "add", ns)
            undo.callback(_ip, "netns", "del", ns)
            outside, inside = f"mg{token}h{i}", f"mg{token}n{i}"
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside, "netns", ns)
            undo.callback(_ip, "link", "del", outside)  # before its namespace: it takes the peer
            _ip("link", "set", outside, "master", net.bridge, "up")
            _ip("-n", ns, "addr", "add", f"{net.address(node)}/24", "dev", inside)
            _ip("-n", ns, "link", "set", inside, "up")
        yield net


GATEWAY_ROUTE = "gateway grpc"


def relay_routes(files: ConsortiumFiles, gateway_front: int | None = None) -> list[Route]:
    """A relay route in front of each node's gRPC port and both its MPC ports.

    Each listens at the host the node is dialled at, on the node's own port, and
    forwards to where the node listens: the ports an order names stay the node's.
    With ``gateway_front``, one more (:data:`GATEWAY_ROUTE`) in front of the
    gateway, at its host on that port, for the analysts to dial.
    """
    settings = load_settings(GatewaySettings, files.gateway_config)
    routes = []
    if gateway_front is not None:
        host, port = host_of(files.gateway_address), int(files.gateway_address.rpartition(":")[2])
        routes.append(Route(GATEWAY_ROUTE, (host, gateway_front), (host, port)))
    for link in settings.nodes:
        target = host_of(files.listen_address(link.name))
        for kind, port in (
            ("grpc", int(link.address.rpartition(":")[2])),
            ("mpc", link.mpc_port),
            ("mpc-long", link.mpc_long_port),
        ):
            routes.append(Route(f"{link.name} {kind}", (link.mpc_host, port), (target, port)))
    return routes


@dataclass(frozen=True)
class NamespacedConsortium:
    """A running consortium, the namespaces its nodes are in, and the relay if there is one."""

    consortium: LocalConsortium
    net: NamespaceNetwork
    relay: RelayProcess | None  # in front of every node's ports and the gateway's, if relayed
    gateway_front: int | None = None  # the relay's port in front of the gateway, if relayed

    @property
    def files(self) -> ConsortiumFiles:
        return self.consortium.files

    @property
    def analyst_address(self) -> str:
        """Where an analyst dials the gateway: through the relay if there is one."""
        if self.gateway_front is None:
            return self.files.gateway_address
        return host_port(host_of(self.files.gateway_address), self.gateway_front)


@contextmanager
def namespaced_consortium(
    root: Path,
    net: NamespaceNetwork,
    *,
    relayed: bool = False,
    start_timeout_s: float = 120.0,
    **options: Any,
) -> Iterator[NamespacedConsortium]:
    """A consortium with each node in its namespace in ``net``; ``options`` go to ``prepare``
    (its nodes are ``net``'s: those in ``helpers`` are its helpers).

    With ``relayed``, the gateway and the nodes dial each other through one relay
    process (no delay until its ``delay_s`` is set), and analysts may dial the
    gateway through it (:attr:`NamespacedConsortium.analyst_address`); stopped, all
    of it, at the end.
    """
    dial = dict.fromkeys(net.namespaces, net.host_address) if relayed else None
    helpers = tuple(options.pop("helpers", ()))
    nodes = tuple(n for n in net.namespaces if n not in helpers)  # ``net``'s order, helpers last
    files = prepare(
        root, nodes=nodes, helpers=helpers, hosts=net.hosts(), dial_hosts=dial, **options
    )
    with ExitStack() as stack:
        front = free_port() if relayed else None
        relay = stack.enter_context(RelayProcess(relay_routes(files, front))) if relayed else None
        consortium = LocalConsortium(files, launch=net.launch())
        stack.callback(consortium.stop)
        consortium.start(timeout_s=start_timeout_s)
        yield NamespacedConsortium(consortium, net, relay, front)
