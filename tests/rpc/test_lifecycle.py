"""A query that waits for approval, against the real gateway: decisions that cannot race or misfire.

The gateway runs in-process with the example policies (bank-b's approver carol
must approve "supervisory review" queries) and a dispatcher that records what
it is asked to run instead of reaching nodes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mpc_gateway.computations import AggregateRequest, Released
from mpc_gateway.computations.aggregate import parse_aggregate
from mpc_gateway.devnet.localnet import ConsortiumFiles
from mpc_gateway.errors import (
    ApprovalMissingError,
    InvalidRequestError,
    PolicyDeniedError,
    ProtocolAbortedError,
)
from mpc_gateway.gateway import record
from mpc_gateway.gateway.lifecycle import QueryBook, QueryState
from mpc_gateway.gateway.service import Gateway
from mpc_gateway.orders import Party
from mpc_gateway.pki import Identity, load_layout, load_signing_key
from mpc_gateway.policy import ApprovalBody, SignedApproval, sign_approval
from mpc_gateway.settings import GatewaySettings, load_settings

ALICE = Identity("analyst", "alice")
CAROL = Identity("approver", "carol")


class RecordingDispatcher:
    """Stands in for the nodes: records every dispatch, and fails it (nothing is computed)."""

    def __init__(self, nodes: tuple[str, ...]) -> None:
        self.parties = tuple(
            Party(index=i, name=n, host="127.0.0.1", port=1 + i) for i, n in enumerate(nodes)
        )
        self.runs: list[str] = []
        self._lock = threading.Lock()

    def run(self, query_id: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.runs.append(query_id)
        raise ProtocolAbortedError("this test has no nodes")

    def close(self) -> None:
        pass


@pytest.fixture()
def gateway(files: ConsortiumFiles, tmp_path: Path) -> Iterator[Gateway]:
    settings = load_settings(GatewaySettings, files.gateway_config)
    own = settings.model_copy(
        update={
            "audit_db": tmp_path / "audit.sqlite",
            "usage_db": tmp_path / "usage.sqlite",
            "models_dir": tmp_path / "models",
        }
    )
    gateway = Gateway(own, dispatcher=RecordingDispatcher(files.nodes))  # type: ignore[arg-type]
    yield gateway
    gateway.close()


def _waiting(gateway: Gateway, group_by: str = "sector") -> str:
    request = AggregateRequest(
        dataset="loans",
        aggregates=(parse_aggregate("count"), parse_aggregate("mean:defaulted")),
        group_by=group_by,
        purpose="supervisory review",
    )
    with pytest.raises(ApprovalMissingError) as caught:
        gateway.run(ALICE, request)
    assert caught.value.query_id is not None
    return caught.value.query_id


def _signed(
    files: ConsortiumFiles, plan_hash: str, decision: str = "approve", *, query_id: str
) -> SignedApproval:
    layout = load_layout(files.pki_dir)
    cert, key = layout.signing_paths(Identity("approver", "carol", layout.trust_domain))
    body = ApprovalBody.issue(
        plan_hash=plan_hash,
        query_id=query_id,
        approver=str(CAROL),
        decision=decision,  # type: ignore[arg-type]
        reason="quarterly review",
        institution="bank-b",
        now=datetime.now(UTC),
    )
    return sign_approval(body, load_signing_key(key), cert.read_bytes())


def _kinds(gateway: Gateway, query_id: str) -> list[str]:
    return [e.event.kind for e in gateway.audit.log.events(query_id=query_id)]


def test_two_approvals_at_the_same_moment_start_the_query_once(
    gateway: Gateway, files: ConsortiumFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    query_id = _waiting(gateway)
    plan_hash = gateway.status(ALICE, query_id).plan.plan_hash
    approvals = [_signed(files, plan_hash, query_id=query_id) for _ in range(2)]
    slow = record.QueryRecord.approval

    def approval_that_takes_a_while(self: record.QueryRecord, *args: Any) -> None:
        time.sleep(0.3)  # both deciders are past every check before either takes effect
        slow(self, *args)

    monkeypatch.setattr(record.QueryRecord, "approval", approval_that_takes_a_while)
    start = threading.Barrier(2)
    outcomes: list[object] = []

    def decide(signed: SignedApproval) -> None:
        start.wait()
        try:
            outcomes.append(gateway.decide(CAROL, query_id, signed).state)
        except PolicyDeniedError as err:
            outcomes.append(err)

    threads = [threading.Thread(target=decide, args=(a,)) for a in approvals]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    tracked = gateway.status(ALICE, query_id)
    assert tracked.done.wait(10)
    assert gateway.dispatcher.runs == [query_id]  # dispatched once
    assert _kinds(gateway, query_id).count("query.submitted") == 1
    assert _kinds(gateway, query_id).count("approval.decided") == 1
    refused = [o for o in outcomes if isinstance(o, PolicyDeniedError)]
    assert len(refused) == 1 and "no longer waiting" in refused[0].public_message
    assert tracked.state is QueryState.FAILED  # the recording dispatcher computes nothing


def test_an_approval_of_another_query_is_refused_before_anything_is_written(
    gateway: Gateway, files: ConsortiumFiles
) -> None:
    first, second = _waiting(gateway, "sector"), _waiting(gateway, "rating")
    first_hash = gateway.status(ALICE, first).plan.plan_hash
    second_hash = gateway.status(ALICE, second).plan.plan_hash
    size = gateway.audit.log.size()
    with pytest.raises(InvalidRequestError) as caught:
        gateway.decide(CAROL, second, _signed(files, first_hash, query_id=second))
    assert first_hash in caught.value.public_message and second_hash in caught.value.public_message
    assert gateway.audit.log.size() == size  # not logged as a decision on either
    assert gateway.status(ALICE, second).state is QueryState.WAITING
    assert gateway.status(ALICE, first).state is QueryState.WAITING
    assert gateway.dispatcher.runs == []


def test_a_rejection_ends_the_query_and_a_finished_query_is_forgotten_after_a_while(
    gateway: Gateway, files: ConsortiumFiles
) -> None:
    now = [1000.0]
    gateway.book = QueryBook(keep_s=60, clock=lambda: now[0])
    query_id = _waiting(gateway)
    plan_hash = gateway.status(ALICE, query_id).plan.plan_hash
    assert (
        gateway.decide(
            CAROL, query_id, _signed(files, plan_hash, "reject", query_id=query_id)
        ).state
        == "rejected"
    )
    assert "query.rejected" in _kinds(gateway, query_id)
    now[0] += 59
    assert gateway.status(ALICE, query_id).state is QueryState.REJECTED  # still kept
    now[0] += 2
    with pytest.raises(InvalidRequestError, match="no query"):
        gateway.status(ALICE, query_id)
    assert gateway.dispatcher.runs == []


def test_a_state_changes_once_however_many_try_at_once(gateway: Gateway) -> None:
    tracked = gateway.status(ALICE, _waiting(gateway))
    start = threading.Barrier(8)
    won: list[bool] = []

    def attempt() -> None:
        start.wait()
        won.append(tracked.transition(QueryState.WAITING, QueryState.RUNNING))

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert won.count(True) == 1
    with pytest.raises(ValueError, match="cannot go from"):
        tracked.transition(QueryState.WAITING, QueryState.RELEASED)


def test_an_outcome_is_set_once(gateway: Gateway) -> None:
    tracked = gateway.status(ALICE, _waiting(gateway))
    assert tracked.transition(QueryState.WAITING, QueryState.RUNNING)
    failure = ProtocolAbortedError("first")
    assert tracked.transition(QueryState.RUNNING, QueryState.FAILED, failure)
    assert not tracked.transition(QueryState.RUNNING, QueryState.RELEASED, object())
    assert tracked.outcome is failure and tracked.done.is_set()
    assert not isinstance(tracked.outcome, Released)
