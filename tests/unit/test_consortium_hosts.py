"""A local consortium at addresses other than loopback: configs and certificates name them."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from mpc_gateway.devnet.localnet import ConsortiumFiles, prepare
from mpc_gateway.errors import ConfigurationError
from mpc_gateway.pki import Identity, load_layout
from mpc_gateway.settings import GatewaySettings, NodeSettings, load_settings

HOSTS = {"gateway": "10.9.0.1", "bank-a": "10.9.0.2", "bank-b": "10.9.0.3", "broker-c": "10.9.0.4"}


def _names(files: ConsortiumFiles, role: str, name: str) -> set[str]:
    layout = load_layout(files.pki_dir)
    cert_path, _ = layout.tls_paths(Identity(role, name, layout.trust_domain))
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} | set(
        sans.get_values_for_type(x509.DNSName)
    )


def _port(address: str) -> str:
    return address.rpartition(":")[2]


def test_each_node_listens_at_its_address_and_is_dialled_where_its_relay_is(
    tmp_path: Path,
) -> None:
    files = prepare(tmp_path / "c", rows=60, hosts=HOSTS, dial_hosts={"bank-b": "10.9.0.1"})
    gateway = load_settings(GatewaySettings, files.gateway_config)
    links = {link.name: link for link in gateway.nodes}
    assert gateway.listen.startswith("10.9.0.1:")
    assert (
        links["bank-a"].address.startswith("10.9.0.2:") and links["bank-a"].mpc_host == "10.9.0.2"
    )
    bank_b = load_settings(NodeSettings, files.node_config("bank-b"))
    assert bank_b.listen.startswith("10.9.0.3:")  # where it listens ...
    assert (
        links["bank-b"].address == f"10.9.0.1:{_port(bank_b.listen)}"
    )  # ... not where it is dialled
    assert links["bank-b"].mpc_host == "10.9.0.1"
    assert (links["bank-b"].mpc_port, links["bank-b"].mpc_long_port) == (
        bank_b.mpc_port,
        bank_b.mpc_long_port,
    )
    # every server's certificate names where it is reached and nothing else (and its name)
    assert _names(files, "node", "bank-a") == {"10.9.0.2", "bank-a"}
    assert _names(files, "node", "bank-b") == {"10.9.0.3", "10.9.0.1", "bank-b"}
    assert _names(files, "gateway", "gateway") == {"10.9.0.1", "gateway"}


def test_by_default_everything_is_on_loopback(tmp_path: Path) -> None:
    files = prepare(tmp_path / "c", rows=60)
    link = load_settings(GatewaySettings, files.gateway_config).nodes[0]
    assert link.mpc_host == "127.0.0.1" and link.address.startswith("127.0.0.1:")
    assert files.listen_address("bank-a") == files.node_addresses["bank-a"]
    assert _names(files, "node", "bank-a") == {"127.0.0.1", "localhost", "bank-a"}


def test_hosts_for_a_process_not_in_the_consortium_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="bank-z"):
        prepare(tmp_path / "c", rows=60, hosts={"bank-z": "10.9.0.9"})
    with pytest.raises(ConfigurationError, match="gateway"):
        prepare(tmp_path / "d", rows=60, dial_hosts={"gateway": "10.9.0.9"})
