"""A whole consortium on one machine: files, then processes, on loopback by default.

:func:`prepare` writes what a consortium needs into one directory: the PKI, a
seeded loan book per institution, every node's config and the gateway's. A
consortium of two institutions adds a data-less helper node (``helpers``), so
that m = 3: its config has ``role = "helper"`` and lists schemas, no data.
:class:`LocalConsortium` then starts each node and the gateway as its own
process with exactly the commands an institution would run
(``mpcgw node serve --config ...``, ``mpcgw gateway serve --config ...``),
waits until their gRPC health services report SERVING, and stops them
cleanly. The demo and the end-to-end tests both use it. Given addresses
(``hosts``) and a command to start each process under (``launch``), the same
consortium runs with every node in its own network namespace
(:mod:`~mpc_gateway.devnet.netns`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from mpc_gateway.client import HealthClient, tls_from_pki
from mpc_gateway.devnet.configs import (
    LOOPBACK,
    ConsortiumFiles,
    host_of,
    host_port,
    toml_str,
    write_configs,
)
from mpc_gateway.devnet.policies import DATASETS, open_policy, schema_path
from mpc_gateway.devnet.postgres import load_table
from mpc_gateway.devnet.synth import alert_book, key_pseudonyms, loan_book, write_loan_book
from mpc_gateway.errors import ConfigurationError, GatewayError
from mpc_gateway.oprf import joint_key
from mpc_gateway.oprf.ceremony import whole_ceremony
from mpc_gateway.pki import init_consortium
from mpc_gateway.pki.ca import DEFAULT_HOSTS
from mpc_gateway.query.schema import load_schema

__all__ = [
    "DATASETS",
    "DEFAULT_NODES",
    "TWO_BANKS",
    "HELPER",
    "ConsortiumFiles",
    "LocalConsortium",
    "prepare",
    "free_port",
    "free_ports",
    "schema_path",
]

DEFAULT_NODES = ("bank-a", "bank-b", "broker-c")
TWO_BANKS = ("bank-a", "bank-b")
HELPER = "helper"
"""The data-less helper node that makes two institutions a consortium of three parties."""


REPO = Path(__file__).resolve().parents[2]
Policies = Literal["examples", "open"]
Storage = Literal["parquet", "csv", "postgres"]


def _write_policies(files: ConsortiumFiles, policies: Policies) -> None:
    for owner in ("consortium", *files.nodes):
        target = files.policy(owner)
        target.parent.mkdir(parents=True, exist_ok=True)
        if policies == "open":
            target.write_text(open_policy(owner))
            continue
        source = REPO / (
            "examples/consortium-policy.toml"
            if owner == "consortium"
            else f"nodes/{owner}/policy.toml"
        )
        if not source.exists():
            raise ConfigurationError(
                f"no example policy for {owner} at {source}: use open policies"
            )
        shutil.copy(source, target)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (one per party of an MPyC run)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


_MARKER = ".mpcgw-localnet"


def _fresh_directory(root: Path) -> None:
    """Empty ``root`` if an earlier prepare() made it; refuse to touch any other directory."""
    if root.exists() and any(root.iterdir()):
        if not (root / _MARKER).exists():
            raise ConfigurationError(
                f"{root} is not empty and was not made by mpcgw: choose another directory"
            )
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / _MARKER).write_text("made by mpcgw; deleted and rebuilt by the next run\n")


def prepare(
    root: Path,
    *,
    nodes: Sequence[str] = DEFAULT_NODES,
    rows: int = 100_000,
    seed: int = 7,
    ill_conditioned: bool = False,
    query_timeout_s: float = 30.0,
    policies: Policies = "open",
    storage: Mapping[str, Storage] | None = None,
    postgres: str | None = None,
    helpers: Sequence[str] = (),
    hosts: Mapping[str, str] | None = None,
    dial_hosts: Mapping[str, str] | None = None,
) -> ConsortiumFiles:
    """Write PKI, data and configs for a consortium under ``root`` (made afresh).

    Each node keeps its loan book as Parquet unless ``storage`` says CSV, or
    PostgreSQL (a table loaded into the server at the connection string ``postgres``).
    ``helpers`` are data-less nodes after ``nodes`` in party order: no loan book.
    ``hosts``: per process (``"gateway"`` or a node), the address it listens at,
    loopback if not named; ``dial_hosts``: per node, the host the gateway and the
    other nodes dial instead (a relay there forwards to it, at the same ports).
    Every server's certificate names each host it listens or is dialled at.
    """
    _fresh_directory(root)
    parties = (*nodes, *helpers)
    files = _placed(root, parties, tuple(helpers), hosts or {}, dial_hosts or {})
    _write_policies(files, policies)
    init_consortium(
        files.pki_dir,
        nodes=list(parties),
        analysts=("alice", "bob"),
        auditors=("audrey",),
        approvers=("carol",),
        host_names=_certificate_hosts(files),
        overwrite=True,
    )
    keys = whole_ceremony(files.pki_dir, files.deal, files.key_share)  # no file holds the key
    pseudonyms = key_pseudonyms(joint_key(keys))
    sources = dict.fromkeys(helpers, "")
    for name in nodes:
        book = loan_book(name, rows, seed, ill_conditioned=ill_conditioned, pseudonyms=pseudonyms)
        write_loan_book(files.data_file(name), book)  # also the demo's plaintext reference
        sources[name] = _store(files, name, book, (storage or {}).get(name, "parquet"), postgres)
        alerts = alert_book(name, max(rows // 50, 200), seed, pseudonyms=pseudonyms)
        write_loan_book(files.data_file(name, "alerts"), alerts)
    ports = {name: (free_port(), free_port()) for name in parties}  # short lane, long lane
    write_configs(files, ports, query_timeout_s, sources)
    return files


def _placed(
    root: Path,
    parties: tuple[str, ...],
    helpers: tuple[str, ...],
    hosts: Mapping[str, str],
    dial_hosts: Mapping[str, str],
) -> ConsortiumFiles:
    """The consortium's files, with where each process listens and is dialled."""
    unknown = sorted(({*hosts} - {"gateway", *parties}) | ({*dial_hosts} - {*parties}))
    if unknown:
        raise ConfigurationError(f"hosts for processes not in the consortium: {unknown}")
    listen = {name: hosts.get(name, LOOPBACK) for name in ("gateway", *parties)}
    dial = {name: dial_hosts.get(name, listen[name]) for name in parties}
    ports = {name: free_port() for name in ("gateway", *parties)}  # one gRPC port each
    return ConsortiumFiles(
        root=root.resolve(),
        nodes=parties,
        gateway_address=host_port(listen["gateway"], ports["gateway"]),
        node_addresses={n: host_port(dial[n], ports[n]) for n in parties},
        helpers=helpers,
        node_listen={n: host_port(listen[n], ports[n]) for n in parties if dial[n] != listen[n]},
    )


def _certificate_hosts(files: ConsortiumFiles) -> dict[str, tuple[str, ...]]:
    """Per server, the hosts its certificate names: loopback's names, or its own addresses."""
    where = {
        "gateway": [files.gateway_address],
        **{n: [files.listen_address(n), files.node_addresses[n]] for n in files.nodes},
    }
    named = {}
    for name, addresses in where.items():
        hosts = [host_of(a) for a in addresses]
        named[name] = tuple(dict.fromkeys([*(DEFAULT_HOSTS if LOOPBACK in hosts else ()), *hosts]))
    return named


def _store(
    files: ConsortiumFiles, name: str, book: Any, storage: Storage, postgres: str | None
) -> str:
    """Keep a node's loan book where ``storage`` says; the node config's lines for it."""
    if storage == "parquet":
        return f"source = {toml_str(files.data_file(name))}\n"
    if storage == "csv":
        path = files.data_file(name).with_suffix(".csv")
        write_loan_book(path, book)
        return f"source = {toml_str(path)}\n"
    if postgres is None:
        raise ConfigurationError(f"{name} keeps its rows in PostgreSQL: give a connection string")
    table = "loans_" + name.replace("-", "_").replace(".", "_")
    load_table(postgres, table, load_schema(schema_path()), files.data_file(name))
    dsn = files.node_config(name).parent / "postgres.dsn"
    dsn.parent.mkdir(parents=True, exist_ok=True)
    dsn.touch(mode=0o600)
    dsn.write_text(postgres + "\n")
    return f"postgres = {{ table = {toml_str(table)}, dsn_file = {toml_str(dsn)} }}\n"


@dataclass
class LocalConsortium:
    """The consortium's processes: start, wait until healthy, kill one, stop all."""

    files: ConsortiumFiles
    # per process, the command it runs under (``ip netns exec NAME``: in a network namespace)
    launch: Mapping[str, Sequence[str]] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: dict[str, IO[bytes]] = field(default_factory=dict)

    def _spawn(self, name: str, role: str, config: Path) -> None:
        log_dir = self.files.root / "logs"
        log_dir.mkdir(exist_ok=True)
        if name in self._logs:
            self._logs.pop(name).close()
        self._logs[name] = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.processes[name] = subprocess.Popen(
            [
                *self.launch.get(name, ()),
                *(sys.executable, "-m", "mpc_gateway.cli", role, "serve", "--config", str(config)),
            ],
            stdout=self._logs[name],
            stderr=subprocess.STDOUT,
            env=env,
        )

    def start_node(self, name: str) -> None:
        self._spawn(name, "node", self.files.node_config(name))

    def start_gateway(self) -> None:
        self._spawn("gateway", "gateway", self.files.gateway_config)

    def start(self, timeout_s: float = 60.0) -> LocalConsortium:
        for name in self.files.nodes:
            self.start_node(name)
        self.start_gateway()
        self.wait_healthy(timeout_s)
        return self

    def _address(self, name: str) -> str:
        return self.files.gateway_address if name == "gateway" else self.files.node_addresses[name]

    def wait_healthy(self, timeout_s: float = 60.0, names: Sequence[str] | None = None) -> None:
        """Wait until every named process answers SERVING on its gRPC health service."""
        tls = tls_from_pki(self.files.pki_dir, "auditor/audrey")
        deadline = time.monotonic() + timeout_s
        for name in names or list(self.processes):
            with HealthClient(self._address(name), tls, timeout_s=1.0) as probe:
                while True:
                    self._check_alive(name)
                    try:
                        if probe.status() == "SERVING":
                            break
                    except GatewayError:
                        pass
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"{name} did not become healthy; see {self.log_path(name)}"
                        )
                    time.sleep(0.1)

    def _check_alive(self, name: str) -> None:
        code = self.processes[name].poll()
        if code is not None:
            tail = self.log_path(name).read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name} exited with code {code}:\n{tail}")

    def log_path(self, name: str) -> Path:
        return self.files.root / "logs" / f"{name}.log"

    def kill(self, name: str) -> None:
        """Kill a process abruptly, as a crash would."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def terminate(self, name: str, timeout_s: float = 90.0) -> int:
        """Stop a process as an operator does (SIGTERM: it drains first); its exit code."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=timeout_s)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        for log in self._logs.values():
            log.close()
        self._logs.clear()

    def __enter__(self) -> LocalConsortium:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
