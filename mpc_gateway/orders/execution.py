"""The execution order the gateway signs and every node verifies.

An order binds one query plan to its place in one lane's global MPC
sequence: its ``lane`` (:mod:`mpc_gateway.lanes`: short queries and long jobs
have sessions and sequences of their own), an ``epoch`` (one warm MPC session of
that lane among the nodes) and a ``sequence`` number inside it. The lane must be
the one the plan's computation declares: every node checks it. Nodes run each
lane's MPC work strictly in sequence order,
because MPyC matches messages by program counter: two parties that start
queries in different orders silently compute garbage. The party list fixes who
takes part and at which MPyC index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator

from mpc_gateway.canonical import canonical_bytes, from_canonical
from mpc_gateway.computations import Plan, plan_from_dict
from mpc_gateway.errors import GatewayError, IntegrityError
from mpc_gateway.lanes import Lane
from mpc_gateway.policy.approvals import SignedApproval

__all__ = [
    "Party",
    "ExecutionOrder",
    "SessionOrder",
    "check_parties",
    "MAX_BATCH",
    "batch_message",
    "check_batch",
]

MAX_BATCH = 32
"""The most orders one batch may hold (the gateway's batches are smaller: settings.py)."""


class Party(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int = Field(ge=0)
    name: str
    host: str
    port: int = Field(ge=1, le=65535)


def check_parties(parties: tuple[Party, ...]) -> None:
    if [p.index for p in parties] != list(range(len(parties))):
        raise IntegrityError("the order's parties are not indexed 0..m-1")


class SessionOrder(BaseModel):
    """The gateway's signed instruction to connect a lane's MPC session of an epoch ahead of use."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["open_session"] = "open_session"
    lane: Lane
    epoch: int = Field(ge=0)
    parties: tuple[Party, ...] = Field(min_length=3)
    issued_at_ms: int

    def canonical(self) -> bytes:
        return canonical_bytes(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, data: bytes) -> SessionOrder:
        try:
            order = cls.model_validate(from_canonical(data))
        except (ValueError, TypeError) as err:
            raise IntegrityError(f"session order is malformed: {err}") from err
        check_parties(order.parties)
        return order


class ExecutionOrder(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    query_id: str
    plan: SerializeAsAny[Plan]
    plan_hash: str
    lane: Lane  # the plan's computation's: every node checks it
    epoch: int = Field(ge=0)
    sequence: int = Field(ge=0)
    parties: tuple[Party, ...] = Field(min_length=3)
    issued_at_ms: int
    deadline_ms: int
    approvals: tuple[SignedApproval, ...] = ()  # what the policies required, signed by approvers
    step: dict[str, Any] = {}  # this step's data, as the plan's computation defines it
    receiver: str = ""  # the analyst's key-agreement certificate (PEM): results are sealed to it

    @field_validator("plan", mode="before")
    @classmethod
    def _plan_of_its_kind(cls, value: Any) -> Any:
        if isinstance(value, dict):
            try:
                return plan_from_dict(value)
            except GatewayError as err:
                raise ValueError(err.public_message) from None
        return value

    def canonical(self) -> bytes:
        return canonical_bytes(self.model_dump(mode="json"))

    def witness_fields(self) -> dict[str, Any]:
        """What names the order in a node's witness log (the gateway's dispatch entry agrees)."""
        return {
            "plan_hash": self.plan_hash,
            "lane": self.lane,
            "epoch": self.epoch,
            "sequence": self.sequence,
        }

    @classmethod
    def from_bytes(cls, data: bytes) -> ExecutionOrder:
        try:
            from_canonical(data)
            order = cls.model_validate_json(data)
        except (ValueError, TypeError) as err:
            raise IntegrityError(f"execution order is malformed: {err}") from err
        if order.plan.plan_hash != order.plan_hash:
            raise IntegrityError("execution order's plan hash does not match its plan")
        check_parties(order.parties)
        return order


def batch_message(orders: Sequence[bytes]) -> bytes:
    """What the gateway signs for a batch: every member order's digest, in the batch's order.

    A batch is one message to every node for several orders, consecutive in one
    lane's sequence, run as one MPC job; each order stays whole (its own query,
    plan, approvals and receiver), so each node checks every member as if it had
    come alone. No order's canonical form has this shape.
    """
    return canonical_bytes(
        {"kind": "batch", "orders": [hashlib.sha256(order).hexdigest() for order in orders]}
    )


def check_batch(orders: Sequence[ExecutionOrder]) -> None:
    """IntegrityError unless ``orders`` are consecutive orders of one lane's session, each once."""
    if not 1 <= len(orders) <= MAX_BATCH:
        raise IntegrityError(f"a batch holds 1 to {MAX_BATCH} orders, not {len(orders)}")
    first = orders[0]
    for position, order in enumerate(orders):
        place = (order.lane, order.epoch, order.parties, order.sequence - position)
        if place != (first.lane, first.epoch, first.parties, first.sequence):
            raise IntegrityError(
                "a batch's orders are not consecutive orders of one lane's MPC session"
            )
    if len({order.query_id for order in orders}) != len(orders):
        raise IntegrityError("a batch holds one query twice")
