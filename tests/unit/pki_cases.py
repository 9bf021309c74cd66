"""Shared by the PKI tests: two throwaway consortia with the same names, and their identities."""

from __future__ import annotations

import pytest

from mpc_gateway.pki import ConsortiumLayout, Identity, init_consortium

NODES = ("bank-a", "bank-b", "bank-c")
GATEWAY = Identity("gateway", "gateway")
ALICE = Identity("analyst", "alice")
BOB = Identity("approver", "bob")


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> ConsortiumLayout:
    return init_consortium(tmp_path_factory.mktemp("pki"), nodes=NODES, approvers=("bob",))


@pytest.fixture(scope="module")
def other_layout(tmp_path_factory: pytest.TempPathFactory) -> ConsortiumLayout:
    """A second consortium: same names, same CA subject, different keys."""
    return init_consortium(tmp_path_factory.mktemp("other"), nodes=NODES, approvers=("bob",))
