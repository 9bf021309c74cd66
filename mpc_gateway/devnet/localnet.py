"""A whole consortium on one machine: files, then processes, on loopback.

:func:`prepare` writes what a consortium needs into one directory: the PKI, a
seeded loan book per institution, every node's config and the gateway's.
:class:`LocalConsortium` then starts each node and the gateway as its own
process with exactly the commands an institution would run
(``mpcgw node serve --config ...``, ``mpcgw gateway serve --config ...``),
waits until their gRPC health services report SERVING, and stops them
cleanly. The demo and the end-to-end tests both use it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO, Literal

from mpc_gateway.client import HealthClient, tls_from_pki
from mpc_gateway.computations import VOCABULARY
from mpc_gateway.devnet.synth import loan_book, write_loan_book
from mpc_gateway.errors import ConfigurationError, GatewayError
from mpc_gateway.pki import init_consortium
from mpc_gateway.pseudonym import create_key_file, load_key
from mpc_gateway.query.schema import CategoricalColumn, KeyColumn, NumericColumn, load_schema

__all__ = [
    "DATASETS",
    "DEFAULT_NODES",
    "ConsortiumFiles",
    "LocalConsortium",
    "prepare",
    "schema_path",
]

DEFAULT_NODES = ("bank-a", "bank-b", "broker-c")


REPO = Path(__file__).resolve().parents[2]
OPEN_PURPOSES = ("risk monitoring", "supervisory review", "testing", "benchmark")
Policies = Literal["examples", "open"]


DATASETS = ("loans", "loans_dp")
"""The example datasets: the loan books, and the same rows shared only under DP."""

OPEN_PRIVACY = 'rho_per_query = 0.05\nrho_per_analyst = 100\nperiod = "day"\n'
"""An open policy's privacy section for ``loans_dp``: noise on every query, a wide budget."""


def _open_policy(owner: str, purposes: Sequence[str] = OPEN_PURPOSES) -> str:
    """A policy letting every analyst use every column in every way, with no output controls.

    Risk computations too: every output and feature, anyone's models, batches of any
    size. ``loans_dp`` the same way, but under differential privacy (no min/max there).
    """
    listed = ", ".join(f'"{p}"' for p in purposes)
    sections = [f'version = 1\nowner = "{owner}"\n']
    for dataset in DATASETS:
        schema = load_schema(schema_path(dataset))
        private = dataset != "loans"
        extremes = "" if private else ', "min", "max"'
        columns = []
        for name, column in schema.columns.items():
            if isinstance(column, NumericColumn):
                columns.append(
                    f'{name} = {{ uses = ["aggregate", "filter"], aggregates = '
                    f'["sum", "mean", "var", "stddev"{extremes}] }}'
                )
            elif isinstance(column, CategoricalColumn):
                columns.append(f'{name} = {{ uses = ["group_by", "filter"] }}')
        numeric = [n for n, c in schema.columns.items() if isinstance(c, NumericColumn)]
        keys = [n for n, c in schema.columns.items() if isinstance(c, KeyColumn)]
        outputs = ["count", "histogram"] if private else sorted(VOCABULARY.outputs)
        features = sorted(VOCABULARY.features)
        risk = (
            f"outputs = {_toml_list(outputs)}\nfeatures = {_toml_list(features)}\n"
            f'model_owners = ["analyst/*"]\nkeys = {_toml_list(keys)}\n'
            f"columns = {_toml_list(numeric)}\nmin_batch = 1\n"
        )
        sections.append(
            f'[datasets.{dataset}]\nprincipals = ["analyst/*"]\npurposes = [{listed}]\n\n'
            f"[datasets.{dataset}.columns]\n" + "\n".join(columns) + "\n\n"
            f"[datasets.{dataset}.risk]\n{risk}"
            + (f"\n[datasets.{dataset}.privacy]\n{OPEN_PRIVACY}" if private else "")
        )
    return "\n".join(sections)


def _toml_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def _write_policies(files: ConsortiumFiles, policies: Policies) -> None:
    for owner in ("consortium", *files.nodes):
        target = files.policy(owner)
        target.parent.mkdir(parents=True, exist_ok=True)
        if policies == "open":
            target.write_text(_open_policy(owner))
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


def schema_path(dataset: str = "loans") -> Path:
    """The packaged schema of an example dataset (``loans`` or ``loans_dp``)."""
    return Path(str(resources.files("mpc_gateway.schemas") / f"{dataset}.toml"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ConsortiumFiles:
    root: Path
    nodes: tuple[str, ...]
    gateway_address: str
    node_addresses: dict[str, str]

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def gateway_config(self) -> Path:
        return self.root / "gateway.toml"

    def node_config(self, name: str) -> Path:
        return self.root / "nodes" / name / "node.toml"

    @property
    def pseudonym_key(self) -> Path:
        """The institutions' shared person-pseudonym key (never given to the gateway)."""
        return self.root / "data" / "pseudonym.key"

    def data_file(self, name: str) -> Path:
        return self.root / "data" / name / "loans.parquet"

    def policy(self, owner: str) -> Path:
        """The policy file of a node, or of the consortium (owner "consortium")."""
        if owner == "consortium":
            return self.root / "consortium-policy.toml"
        return self.root / "nodes" / owner / "policy.toml"


def _toml_str(value: object) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_configs(
    files: ConsortiumFiles, mpc_ports: dict[str, int], query_timeout_s: float
) -> None:
    nodes_toml = []
    for name in files.nodes:
        config = files.node_config(name)
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            f"name = {_toml_str(name)}\nlisten = {_toml_str(files.node_addresses[name])}\n"
            f"mpc_port = {mpc_ports[name]}\npki_dir = {_toml_str(files.pki_dir)}\n"
            f'gateway = "gateway"\naudit_db = {_toml_str(config.parent / "audit.sqlite")}\n'
            f"policy = {_toml_str(files.policy(name))}\n"
            f"usage_db = {_toml_str(config.parent / 'usage.sqlite')}\n"
            + "".join(
                f"\n[datasets.{dataset}]\nschema = {_toml_str(schema_path(dataset))}\n"
                f"source = {_toml_str(files.data_file(name))}\n"  # the same rows, both datasets
                for dataset in DATASETS
            )
        )
        nodes_toml.append(
            f"[[nodes]]\nname = {_toml_str(name)}\n"
            f"address = {_toml_str(files.node_addresses[name])}\n"
            f'mpc_host = "127.0.0.1"\nmpc_port = {mpc_ports[name]}\n'
            f"policy = {_toml_str(files.policy(name))}\n"
        )
    files.gateway_config.write_text(
        f'name = "gateway"\nlisten = {_toml_str(files.gateway_address)}\n'
        f"pki_dir = {_toml_str(files.pki_dir)}\n"
        f"audit_db = {_toml_str(files.root / 'audit.sqlite')}\n"
        f"consortium_policy = {_toml_str(files.policy('consortium'))}\n"
        f"usage_db = {_toml_str(files.root / 'usage.sqlite')}\n"
        f"query_timeout_s = {query_timeout_s}\n\n"
        + "".join(
            f"[datasets.{dataset}]\nschema = {_toml_str(schema_path(dataset))}\n\n"
            for dataset in DATASETS
        )
        + "\n".join(nodes_toml)
    )


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
) -> ConsortiumFiles:
    """Write PKI, data and configs for a loopback consortium under ``root`` (made afresh)."""
    _fresh_directory(root)
    files = ConsortiumFiles(
        root=root.resolve(),
        nodes=tuple(nodes),
        gateway_address=f"127.0.0.1:{free_port()}",
        node_addresses={name: f"127.0.0.1:{free_port()}" for name in nodes},
    )
    _write_policies(files, policies)
    init_consortium(
        files.pki_dir,
        nodes=list(nodes),
        analysts=("alice", "bob"),
        auditors=("audrey",),
        approvers=("carol",),
        overwrite=True,
    )
    if not files.pseudonym_key.exists():
        files.pseudonym_key.parent.mkdir(parents=True, exist_ok=True)
        create_key_file(files.pseudonym_key)
    key = load_key(files.pseudonym_key)
    for name in nodes:
        book = loan_book(name, rows, seed, ill_conditioned=ill_conditioned, pseudonym_key=key)
        write_loan_book(files.data_file(name), book)
    _write_configs(files, {name: free_port() for name in nodes}, query_timeout_s)
    return files


@dataclass
class LocalConsortium:
    """The consortium's processes: start, wait until healthy, kill one, stop all."""

    files: ConsortiumFiles
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
            [sys.executable, "-m", "mpc_gateway.cli", role, "serve", "--config", str(config)],
            stdout=self._logs[name],
            stderr=subprocess.STDOUT,
            env=env,
        )

    def start_node(self, name: str) -> None:
        self._spawn(name, "node", self.files.node_config(name))

    def start(self, timeout_s: float = 60.0) -> LocalConsortium:
        for name in self.files.nodes:
            self.start_node(name)
        self._spawn("gateway", "gateway", self.files.gateway_config)
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
