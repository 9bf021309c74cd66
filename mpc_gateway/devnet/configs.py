"""What a local consortium's directory holds, and the node and gateway configs in it.

:class:`ConsortiumFiles` says where everything is (PKI, data, policies, configs)
and where every process is reached; :func:`write_configs` writes every node's
``node.toml`` and the gateway's ``gateway.toml`` from it, exactly the files an
institution's operator would write. A node listens at its own address and is
dialled at its address in :attr:`ConsortiumFiles.node_addresses`: the same one,
unless something stands between (a relay adding network delay, in front of its
gRPC and MPC ports alike).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mpc_gateway.devnet.policies import DATASETS, schema_path

__all__ = ["LOOPBACK", "ConsortiumFiles", "host_of", "host_port", "toml_str", "write_configs"]

LOOPBACK = "127.0.0.1"


def host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def host_of(address: str) -> str:
    """The host of a ``host:port`` address."""
    return address.rpartition(":")[0].strip("[]")


@dataclass(frozen=True)
class ConsortiumFiles:
    root: Path
    nodes: tuple[str, ...]  # every MPC party, in party order (helpers last)
    gateway_address: str
    node_addresses: dict[str, str]  # where the gateway and the other nodes reach each node
    helpers: tuple[str, ...] = ()  # the nodes that hold no data
    node_listen: dict[str, str] = field(default_factory=dict)  # where one listens, if elsewhere

    @property
    def institutions(self) -> tuple[str, ...]:
        """The nodes that hold data (each has a loan book, :meth:`data_file`)."""
        return tuple(n for n in self.nodes if n not in self.helpers)

    def listen_address(self, name: str) -> str:
        """Where node ``name`` listens: where it is reached, unless a relay stands between."""
        return self.node_listen.get(name, self.node_addresses[name])

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def gateway_config(self) -> Path:
        return self.root / "gateway.toml"

    def node_config(self, name: str) -> Path:
        return self.root / "nodes" / name / "node.toml"

    def key_share(self, name: str) -> Path:
        """Node ``name``'s share of the persons' pseudonym key (``mpcgw oprf combine``)."""
        return self.root / "nodes" / name / "pseudonym-key.json"

    def deal(self, name: str) -> Path:
        """Node ``name``'s contribution to the pseudonym key's ceremony (``mpcgw oprf deal``)."""
        return self.root / "ceremony" / f"{name}.deal.json"

    def data_file(self, name: str, dataset: str = "loans") -> Path:
        """A node's rows as written (``loans_dp`` shares the loan book's file)."""
        return self.root / "data" / name / f"{'alerts' if dataset == 'alerts' else 'loans'}.parquet"

    def policy(self, owner: str) -> Path:
        """The policy file of a node, or of the consortium (owner "consortium")."""
        if owner == "consortium":
            return self.root / "consortium-policy.toml"
        return self.root / "nodes" / owner / "policy.toml"


def toml_str(value: object) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_configs(
    files: ConsortiumFiles,
    mpc_ports: dict[str, tuple[int, int]],
    query_timeout_s: float,
    sources: dict[str, str],
) -> None:
    """``mpc_ports``: per node, its short and long lanes' MPC ports; ``sources``: per node, the
    TOML lines that say where its loan book is (both loan datasets).

    Its alerts are always the Parquet file :func:`~mpc_gateway.devnet.localnet.prepare`
    wrote; a helper has neither. Peers dial a node's MPC ports at the host it is reached at.
    """
    nodes_toml = []
    for name in files.nodes:
        ports = f"mpc_port = {mpc_ports[name][0]}\nmpc_long_port = {mpc_ports[name][1]}\n"
        config = files.node_config(name)
        config.parent.mkdir(parents=True, exist_ok=True)
        role = 'role = "helper"\n' if name in files.helpers else ""  # and no source
        config.write_text(
            f"name = {toml_str(name)}\n{role}listen = {toml_str(files.listen_address(name))}\n"
            f"{ports}pki_dir = {toml_str(files.pki_dir)}\n"
            f'gateway = "gateway"\naudit_db = {toml_str(config.parent / "audit.sqlite")}\n'
            f"policy = {toml_str(files.policy(name))}\n"
            f"usage_db = {toml_str(config.parent / 'usage.sqlite')}\n"
            f"pseudonym_key_share = {toml_str(files.key_share(name))}\n"
            + "".join(
                f"\n[datasets.{dataset}]\nschema = {toml_str(schema_path(dataset))}\n"
                + _source(files, name, dataset, sources[name])
                for dataset in DATASETS
            )
        )
        nodes_toml.append(
            f"[[nodes]]\nname = {toml_str(name)}\n"
            f"address = {toml_str(files.node_addresses[name])}\n"
            f"mpc_host = {toml_str(host_of(files.node_addresses[name]))}\n{ports}"
            f"policy = {toml_str(files.policy(name))}\n{role}"
        )
    files.gateway_config.write_text(
        f'name = "gateway"\nlisten = {toml_str(files.gateway_address)}\n'
        f"pki_dir = {toml_str(files.pki_dir)}\n"
        f"audit_db = {toml_str(files.root / 'audit.sqlite')}\n"
        f"consortium_policy = {toml_str(files.policy('consortium'))}\n"
        f"usage_db = {toml_str(files.root / 'usage.sqlite')}\n"
        f"query_timeout_s = {query_timeout_s}\n\n"
        + "".join(
            f"[datasets.{dataset}]\nschema = {toml_str(schema_path(dataset))}\n\n"
            for dataset in DATASETS
        )
        + "\n".join(nodes_toml)
    )


def _source(files: ConsortiumFiles, name: str, dataset: str, loans: str) -> str:
    if dataset != "alerts" or name in files.helpers:
        return loans  # the same loan book for loans and loans_dp; nothing at a helper
    return f"source = {toml_str(files.data_file(name, 'alerts'))}\n"
