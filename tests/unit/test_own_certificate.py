"""A client says what is wrong with its own certificate before TLS can only close the socket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mpc_gateway.errors import UnauthenticatedError
from mpc_gateway.pki import ConsortiumLayout, tls_credentials_bytes
from mpc_gateway.pki.own_certificate import check_own_certificate
from mpc_gateway.rpc.client import HealthClient
from tests.unit import pki_cases
from tests.unit.pki_cases import ALICE

layout = pki_cases.layout
other_layout = pki_cases.other_layout


def test_a_certificate_of_the_consortium_ca_in_its_validity_passes(
    layout: ConsortiumLayout,
) -> None:
    ca, cert, _ = tls_credentials_bytes(layout, ALICE)
    assert check_own_certificate(ca, cert).issuer is not None


def test_an_expired_certificate_is_named_with_its_expiry(layout: ConsortiumLayout) -> None:
    ca, cert, _ = tls_credentials_bytes(layout, ALICE)
    later = datetime.now(UTC) + timedelta(days=20 * 365)
    with pytest.raises(UnauthenticatedError) as caught:
        check_own_certificate(ca, cert, now=later)
    message = caught.value.public_message
    assert ALICE.spiffe_id in message and "expired at" in message


def test_a_certificate_of_another_ca_is_named_as_such(
    layout: ConsortiumLayout, other_layout: ConsortiumLayout
) -> None:
    ca = layout.ca_cert.read_bytes()
    _, foreign, _ = tls_credentials_bytes(other_layout, ALICE)
    with pytest.raises(UnauthenticatedError, match="not issued by the consortium CA"):
        check_own_certificate(ca, foreign)


def test_no_certificate_at_all_is_said_plainly(layout: ConsortiumLayout) -> None:
    with pytest.raises(UnauthenticatedError, match="no client certificate"):
        check_own_certificate(layout.ca_cert.read_bytes(), b"")


def test_a_client_refuses_to_connect_with_a_certificate_of_another_ca(
    layout: ConsortiumLayout, other_layout: ConsortiumLayout
) -> None:
    ca = layout.ca_cert.read_bytes()
    _, foreign, key = tls_credentials_bytes(other_layout, ALICE)
    with pytest.raises(UnauthenticatedError, match="unknown CA"):
        HealthClient("127.0.0.1:1", (ca, foreign, key))
