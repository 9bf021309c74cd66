"""The consortium PKI: layout on disk, certificate contents, identities, signing."""

from __future__ import annotations

import ipaddress
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mpc_gateway.errors import ConfigurationError, IntegrityError, UnauthenticatedError
from mpc_gateway.pki import (
    ConsortiumLayout,
    Identity,
    identity_from_certificate,
    init_consortium,
    issue_identity,
    load_ca,
    load_layout,
    load_signing_key,
    load_verified_signing_cert,
    sign,
    signing,
    verify,
)
from tests.unit import pki_cases
from tests.unit.cli_cases import _invoke
from tests.unit.pki_cases import ALICE, BOB, GATEWAY, NODES

# the module-scoped fixtures, so that pytest finds them here
layout = pki_cases.layout
other_layout = pki_cases.other_layout


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _all_cert_paths(layout: ConsortiumLayout) -> list[Path]:
    paths = [layout.tls_paths(identity)[0] for identity in layout.identities]
    paths += [layout.signing_paths(GATEWAY)[0], layout.signing_paths(BOB)[0]]
    paths += [layout.mpc_files(node)[0] for node in NODES]
    return paths


# --- layout and certificate contents -------------------------------------------------


def test_init_writes_every_file_and_keys_are_owner_only(layout: ConsortiumLayout) -> None:
    keys = [layout.ca_key, *(layout.tls_paths(i)[1] for i in layout.identities)]
    keys += [layout.signing_paths(GATEWAY)[1], layout.signing_paths(BOB)[1]]
    keys += [layout.mpc_files(node)[1] for node in NODES]
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
        assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    for cert in [layout.ca_cert, *_all_cert_paths(layout)]:
        assert cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    for i, node in enumerate(NODES):
        config = layout.mpc_dir(node) / ".config"
        assert (config / f"party_{i}.crt").is_file() and (config / f"party_{i}.key").is_file()
        assert (config / "mpyc_ca.crt").read_bytes() == layout.ca_cert.read_bytes()
    assert [i.role for i in layout.identities].count("node") == 3


def test_ca_is_a_path_length_zero_ecdsa_ca(layout: ConsortiumLayout) -> None:
    ca = load_ca(layout.ca_cert)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    cn = ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "mpc-gateway consortium CA (mpcgw.local)"


def test_every_certificate_chains_to_the_ca(layout: ConsortiumLayout) -> None:
    ca = load_ca(layout.ca_cert)
    for path in _all_cert_paths(layout):
        cert = _cert(path)
        cert.verify_directly_issued_by(ca)
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert aki.key_identifier == ca_ski.digest


def test_tls_certificates_name_their_hosts_only_for_servers(layout: ConsortiumLayout) -> None:
    gateway = _cert(layout.tls_paths(GATEWAY)[0])
    san = gateway.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "gateway"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    eku = gateway.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert gateway.subject.rfc4514_string() == "CN=gateway/gateway"
    alice = _cert(layout.tls_paths(ALICE)[0])
    san = alice.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.UniformResourceIdentifier(ALICE.spiffe_id)]


def test_signing_certificates_hold_ed25519_keys_without_tls_usage(
    layout: ConsortiumLayout,
) -> None:
    for identity in (GATEWAY, BOB, ALICE):  # analysts sign their pseudonym requests
        cert = _cert(layout.signing_paths(identity)[0])
        assert isinstance(cert.public_key(), ed25519.Ed25519PublicKey)
        with pytest.raises(x509.ExtensionNotFound):
            cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical and usage.value.digital_signature
        assert identity_from_certificate(cert) == identity
    with pytest.raises(ConfigurationError, match="no signing key"):
        layout.signing_paths(Identity("auditor", "audrey"))


def test_party_certificates_carry_mpyc_name_and_node_identity(layout: ConsortiumLayout) -> None:
    for i, node in enumerate(NODES):
        cert = _cert(layout.mpc_files(node)[0])
        assert cert.subject.rfc4514_string() == f"CN=MPyC party {i}"
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [f"MPyC party {i}"]
        assert identity_from_certificate(cert) == Identity("node", node)
        assert layout.party_index(node) == i and layout.party_identity(i).name == node


def test_layout_round_trips_through_consortium_json(layout: ConsortiumLayout) -> None:
    assert load_layout(layout.root) == layout
    manifest = json.loads(layout.manifest.read_text())
    assert [(n["name"], n["party_index"]) for n in manifest["nodes"]] == list(
        zip(NODES, range(3), strict=True)
    )
    assert {e["spiffe_id"] for e in manifest["identities"]} == {
        i.spiffe_id for i in layout.identities
    }
    for entry in manifest["identities"]:
        assert (layout.root / entry["tls_cert"]).is_file()


def test_load_layout_without_manifest_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"no consortium.json .*\(mpcgw pki init\)"):
        load_layout(tmp_path)


def test_unknown_node_and_identity_are_configuration_errors(layout: ConsortiumLayout) -> None:
    with pytest.raises(ConfigurationError, match="not an MPyC party"):
        layout.mpc_dir("bank-z")
    with pytest.raises(ConfigurationError, match="has no certificate"):
        layout.tls_paths(Identity("analyst", "mallory"))


def test_init_refuses_to_replace_an_existing_ca(tmp_path: Path) -> None:
    first = init_consortium(tmp_path, nodes=("a",))
    ca_before = first.ca_cert.read_bytes()
    with pytest.raises(ConfigurationError, match="already holds a consortium"):
        init_consortium(tmp_path, nodes=("a",))
    assert first.ca_cert.read_bytes() == ca_before
    init_consortium(tmp_path, nodes=("a",), overwrite=True)
    assert first.ca_cert.read_bytes() != ca_before


def test_issue_identity_adds_exactly_one(tmp_path: Path) -> None:
    before = init_consortium(tmp_path, nodes=("bank-a", "bank-b"))
    after = issue_identity(tmp_path, Identity("analyst", "carol"))
    assert set(after.identities) - set(before.identities) == {Identity("analyst", "carol")}
    assert load_layout(tmp_path) == after
    ca = load_ca(after.ca_cert)
    _cert(after.tls_paths(Identity("analyst", "carol"))[0]).verify_directly_issued_by(ca)
    grown = issue_identity(tmp_path, Identity("node", "bank-c"))
    assert grown.nodes == ("bank-a", "bank-b", "bank-c") and grown.party_index("bank-c") == 2
    assert (grown.mpc_dir("bank-c") / ".config" / "party_2.crt").is_file()
    with pytest.raises(ConfigurationError, match="already has a certificate"):
        issue_identity(tmp_path, Identity("analyst", "carol"))
    with pytest.raises(ConfigurationError, match="trust domain"):
        issue_identity(tmp_path, Identity("analyst", "dave", "elsewhere.test"))


# --- identities ------------------------------------------------------------------------


def test_identity_round_trips_through_its_spiffe_id() -> None:
    identity = Identity("node", "bank-a")
    assert identity.spiffe_id == "spiffe://mpcgw.local/node/bank-a"
    assert str(identity) == "node/bank-a"
    assert Identity.from_spiffe_id(identity.spiffe_id) == identity


@pytest.mark.parametrize(
    "uri",
    [
        "https://mpcgw.local/node/a",
        "spiffe://mpcgw.local/node",
        "spiffe://mpcgw.local/node/a/b",
        "spiffe://mpcgw.local/root/a",
        "spiffe://mpcgw.local/node/A",
        "spiffe://mpcgw.local/node/a?x=1",
        "spiffe://mpcgw.local:443/node/a",
        "spiffe:///node/a",
        "spiffe://mpcgw.local/node/",
    ],
)
def test_malformed_spiffe_ids_are_unauthenticated(uri: str) -> None:
    with pytest.raises(UnauthenticatedError):
        Identity.from_spiffe_id(uri)


def test_foreign_trust_domain_is_rejected_when_one_is_expected() -> None:
    with pytest.raises(UnauthenticatedError, match="trust domain"):
        Identity.from_spiffe_id("spiffe://evil.test/node/a", trust_domain="mpcgw.local")


@pytest.mark.parametrize(("role", "name"), [("root", "x"), ("node", "-a"), ("node", "a" * 64)])
def test_invalid_identity_fields_raise_value_error(role: str, name: str) -> None:
    with pytest.raises(ValueError):
        Identity(role, name)


def test_certificate_without_a_uri_san_has_no_identity(layout: ConsortiumLayout) -> None:
    with pytest.raises(UnauthenticatedError, match="0 URI SANs"):
        identity_from_certificate(layout.ca_cert.read_bytes())
    with pytest.raises(UnauthenticatedError, match="not a PEM"):
        identity_from_certificate(b"not a certificate")
    assert identity_from_certificate(layout.tls_paths(ALICE)[0].read_bytes()) == ALICE


# --- signing ---------------------------------------------------------------------------


def test_signature_verifies_under_the_certified_key(layout: ConsortiumLayout) -> None:
    cert_path, key_path = layout.signing_paths(BOB)
    public_key = load_verified_signing_cert(cert_path.read_bytes(), load_ca(layout.ca_cert), BOB)
    signature = sign(load_signing_key(key_path), b"approve query 42")
    verify(public_key, signature, b"approve query 42")
    with pytest.raises(IntegrityError, match="signature does not verify"):
        verify(public_key, signature, b"approve query 43")
    tampered = bytes([signature[0] ^ 1]) + signature[1:]
    with pytest.raises(IntegrityError, match="signature does not verify"):
        verify(public_key, tampered, b"approve query 42")


def test_signing_cert_from_another_ca_is_an_integrity_error(
    layout: ConsortiumLayout, other_layout: ConsortiumLayout
) -> None:
    foreign = other_layout.signing_paths(BOB)[0].read_bytes()
    with pytest.raises(IntegrityError, match="not issued by the consortium CA"):
        load_verified_signing_cert(foreign, load_ca(layout.ca_cert), BOB)


def test_signing_cert_of_another_identity_is_unauthenticated(layout: ConsortiumLayout) -> None:
    gateway_cert = layout.signing_paths(GATEWAY)[0].read_bytes()
    with pytest.raises(UnauthenticatedError, match="is for spiffe://mpcgw.local/gateway/gateway"):
        load_verified_signing_cert(gateway_cert, load_ca(layout.ca_cert), BOB)


def test_tls_certificate_is_not_a_signing_certificate(layout: ConsortiumLayout) -> None:
    tls_cert = layout.tls_paths(BOB)[0].read_bytes()
    with pytest.raises(UnauthenticatedError, match="not an Ed25519 key"):
        load_verified_signing_cert(tls_cert, load_ca(layout.ca_cert), BOB)


def test_expired_and_future_signing_certs_are_unauthenticated(tmp_path: Path) -> None:
    init_consortium(tmp_path, nodes=("a",), now=datetime.now(UTC) - timedelta(days=30))
    old = Identity("approver", "old")
    layout = issue_identity(tmp_path, old, valid_days=1, now=datetime.now(UTC) - timedelta(days=3))
    cert_pem = layout.signing_paths(old)[0].read_bytes()
    ca = load_ca(layout.ca_cert)
    with pytest.raises(UnauthenticatedError, match="signing certificate of approver/old expired"):
        load_verified_signing_cert(cert_pem, ca, old)
    early = datetime.now(UTC) - timedelta(days=10)
    with pytest.raises(UnauthenticatedError, match="not valid before"):
        load_verified_signing_cert(cert_pem, ca, old, now=early)
    load_verified_signing_cert(cert_pem, ca, old, now=datetime.now(UTC) - timedelta(hours=60))


def test_a_certificate_is_checked_once_while_valid_and_again_once_expired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    init_consortium(tmp_path, nodes=("a",))
    carol = Identity("approver", "carol")
    layout = issue_identity(tmp_path, carol, valid_days=1)
    cert_pem, ca = layout.signing_paths(carol)[0].read_bytes(), load_ca(layout.ca_cert)
    checked: list[str] = []
    real = signing._check_issued_by
    monkeypatch.setattr(
        signing, "_check_issued_by", lambda c, a, who: checked.append(who) or real(c, a, who)
    )
    for _ in range(3):
        load_verified_signing_cert(cert_pem, ca, carol)
    assert checked == ["approver/carol"]  # the CA's signature, verified once
    with pytest.raises(UnauthenticatedError, match="is for spiffe://mpcgw.local/approver/carol"):
        load_verified_signing_cert(cert_pem, ca, BOB)  # remembered for carol only
    later = datetime.now(UTC) + timedelta(days=2)
    monkeypatch.setattr(signing, "_now", lambda: later)
    with pytest.raises(UnauthenticatedError, match="approver/carol expired"):
        load_verified_signing_cert(cert_pem, ca, carol)  # past its expiry: checked, and refused


def _sans(layout: ConsortiumLayout, who: Identity) -> set[str]:
    cert = _cert(layout.tls_paths(who)[0])
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n) for n in names.get_values_for_type(x509.DNSName)} | {
        str(n) for n in names.get_values_for_type(x509.IPAddress)
    }


def test_pki_init_names_each_servers_own_hosts(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    nodes = [arg for n in NODES for arg in ("--node", n)]
    hosts = ["--server-host", "bank-a=10.1.0.5", "--server-host", "bank-a=bank-a.example"]
    result = _invoke("pki", "init", "--out", str(out), *nodes, *hosts)
    assert result.exit_code == 0, result.output
    layout = load_layout(out)
    assert _sans(layout, Identity("node", "bank-a")) == {"10.1.0.5", "bank-a.example", "bank-a"}
    assert _sans(layout, Identity("node", "bank-b")) == {"localhost", "127.0.0.1", "bank-b"}
    refused = _invoke(
        "pki", "init", "--out", str(tmp_path / "x"), *nodes, "--server-host", "bank-z=h"
    )
    assert refused.exit_code == 5 and "servers are gateway, bank-a" in refused.output
    malformed = _invoke("pki", "init", "--out", str(tmp_path / "y"), "--server-host", "bank-a")
    assert malformed.exit_code == 5 and "NAME=HOST" in malformed.output
