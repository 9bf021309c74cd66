"""SQL statements through the real gateway servicer: same plan as the flags, statuses, the log.

The gateway is served in-process on port 0 with the example policies; its nodes
listen nowhere, so a query the policies allow is planned, audited and then fails
to dispatch, which is all these tests need.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mpc_gateway.client import GatewayClient, tls_from_pki
from mpc_gateway.errors import InvalidQueryError, NodeUnavailableError
from mpc_gateway.gateway.service import Gateway
from tests.rpc.conftest import Served

STATEMENT = (
    "SELECT sector, rating, COUNT(*), AVG(exposure) FROM loans "
    "WHERE exposure > 1000 AND rating IN ('BB','B') GROUP BY sector, rating"
)


@pytest.fixture()
def alice(gateway_server: Served) -> Iterator[GatewayClient]:
    tls = tls_from_pki(gateway_server.pki, "analyst/alice")
    with GatewayClient(f"127.0.0.1:{gateway_server.port}", tls, timeout_s=30.0) as client:
        yield client


def _events(gateway: Gateway, kind: str) -> list[dict[str, object]]:
    return [e.event.details for e in gateway.audit.log.events(kind=kind)]


def test_a_statement_and_its_flag_query_have_the_same_plan_hash(alice: GatewayClient) -> None:
    by_sql = alice.explain_sql(STATEMENT, purpose="risk monitoring")
    by_flags = alice.explain(
        "aggregate",
        "loans",
        where="exposure > 1000 AND rating IN ('BB','B')",
        purpose="risk monitoring",
        aggregates=["count", "mean:exposure"],
        group_by=["sector", "rating"],
    )
    assert by_sql["plan_hash"] == by_flags["plan_hash"]
    assert by_sql["allowed"] == by_flags["allowed"]
    assert by_sql["disclosure"] == by_flags["disclosure"]


def test_a_refused_statement_is_invalid_argument_at_its_position_and_audited(
    alice: GatewayClient, gateway: Gateway
) -> None:
    statement = "SELECT COUNT(*) FROM loans a JOIN loans b ON a.rating = b.rating"
    with pytest.raises(InvalidQueryError) as refused:
        alice.sql(statement, purpose="risk monitoring")
    assert refused.value.status == "INVALID_ARGUMENT"
    assert "SQL at line 1, column 35: joins across institutions" in str(refused.value)
    logged = [d for d in _events(gateway, "query.refused") if d.get("statement") == statement]
    assert len(logged) == 1
    assert "joins across institutions" in str(logged[0]["reason"])


def test_the_submitted_entry_keeps_the_statement_beside_the_plan(
    alice: GatewayClient, gateway: Gateway
) -> None:
    statement = STATEMENT + " ORDER BY 3 DESC LIMIT 4"
    with pytest.raises(NodeUnavailableError):  # the nodes listen nowhere
        alice.sql(statement, purpose="risk monitoring")
    (entry,) = [d for d in _events(gateway, "query.submitted") if d.get("statement") == statement]
    plan = entry["plan"]
    assert isinstance(plan, dict)
    assert plan["group_by"] == ["sector", "rating"] and "statement" not in plan


def test_a_statement_beside_a_flag_job_is_refused(alice: GatewayClient) -> None:
    message = alice.request("aggregate", "loans", aggregates=["count"])
    message.sql = "SELECT COUNT(*) FROM loans"
    with pytest.raises(InvalidQueryError, match="either a SQL statement or"):
        alice._call(alice._stub.Run, message)


def test_a_statement_longer_than_the_limit_is_invalid_argument(alice: GatewayClient) -> None:
    statement = "SELECT COUNT(*) FROM loans WHERE " + " OR ".join(["lgd > 0.5"] * 2500)
    with pytest.raises(InvalidQueryError, match="at most 20,000 are accepted"):
        alice.sql(statement)
