"""Real-time entity checks: is a counterparty or a person flagged at any member, and at how many.

For a few keys (a counterparty's LEI, a person's pseudonym) and a dataset such as
``alerts`` (every member's fraud and AML alerts), the receiver gets per key only
the bit "some member holds a row of it" (``question="flagged"``) or the number of
members that do (``"members"``), or for a whole watchlist only how many of its
keys some member holds (``"overlap"``: the private intersection's cardinality),
with ``amount`` also the members' alert amounts summed over the watchlist's keys
(the intersection-sum over the members' values), under the plan's filter: ``kind = 'aml' AND
raised_day >= ...`` asks "flagged for money laundering in the last 30 days".
Each node inputs one bit per key, "I hold a row of it"; the MPC sums them
(:mod:`mpc_gateway.mpc.programs.check`), so no one learns which member flagged
it, nor any alert, date or amount. A check is a point query by design: a policy
allows it with ``min_batch = 1`` (with a larger one the batch must be that large,
and the MPC's known-entities bit gates the result as for every batch over keys).
One alert can flip a bit or change a count, so no output is differentially private.

Disclosure: the receiver learns the bit or count per key; every node learns the
keys (they are in the signed order) and nothing of the result; the gateway
learns neither the keys' results nor the keys in its audit log (the batch is
recorded by its size and SHA-256).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, model_validator

from mpc_gateway.computations.base import (
    Blocks,
    Computation,
    Display,
    Execution,
    LocalData,
    Outcome,
    Plan,
    ProgramCall,
    Request,
)
from mpc_gateway.computations.features import (
    ALERT_AMOUNT,
    FeatureSpec,
    local_entity_features,
    local_presence,
)
from mpc_gateway.computations.known_entities import ENOUGH_KNOWN, KnownEntities, known_entities
from mpc_gateway.computations.shared import (
    DEFAULT_KEY_COLUMN,
    Watchlist,
    bits,
    block,
    check_key_column,
    fields_set,
    risk_disclosure,
    without_keys,
)
from mpc_gateway.errors import IntegrityError
from mpc_gateway.policy.declaration import Declaration, EntityBatch, RiskUse
from mpc_gateway.policy.models import MAX_BATCH, MAX_WATCHLIST
from mpc_gateway.proto.v1 import gateway_pb2
from mpc_gateway.query.schema import ColumnName, DatasetSchema

__all__ = ["CheckRequest", "CheckPlan", "CheckOutcome", "Checks", "Question", "alert_filter"]

Question = Literal["flagged", "members", "overlap"]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def alert_filter(kind: str, days: int | None, where: str = "", now: datetime | None = None) -> str:
    """A filter over a dataset shaped like ``alerts``: of ``kind``, raised in the last ``days``.

    ``raised_day`` counts days since 1970-01-01 (UTC); the last 0 days is today.
    ``where`` (any further filter) is joined with AND.
    """
    parts = []
    if kind:
        parts.append(f"kind = '{kind}'")
    if days is not None:
        today = ((now or datetime.now(UTC)) - _EPOCH).days
        parts.append(f"raised_day >= {today - days}")
    if where:
        parts.append(f"({where})")
    return " AND ".join(parts)


class _Job(BaseModel):
    """What a check request and its plan both say."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keys: Watchlist
    key_column: ColumnName = DEFAULT_KEY_COLUMN
    question: Question = "flagged"
    amount: bool = False  # with "overlap": also the members' amounts on the keys, summed

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if len(set(self.keys)) != len(self.keys):
            raise ValueError("checked keys must be distinct: a key is listed twice")
        if self.amount and self.question != "overlap":
            raise ValueError("an amount is summed over a watchlist's overlap only: ask overlap")
        if self.question != "overlap" and len(self.keys) > MAX_BATCH:
            raise ValueError(
                f"a check answering per key takes at most {MAX_BATCH:,} keys (got "
                f"{len(self.keys):,}); a watchlist's overlap takes up to {MAX_WATCHLIST:,}"
            )
        return self

    def audit_view(self) -> dict[str, Any]:
        return without_keys(self.model_dump(mode="json"))


class CheckRequest(_Job, Request):
    """Per key, whether any member holds a row of it, or how many members do."""

    kind: Literal["check"] = "check"


class CheckPlan(_Job, Plan):
    kind: Literal["check"] = "check"

    def declaration(self) -> Declaration:
        blocker = f"{self.question} changes with a single row, which noise cannot protect"
        outputs = (self.question, "amount") if self.amount else (self.question,)
        risk = RiskUse(outputs, batch=EntityBatch(self.key_column, len(self.keys)))
        return Declaration(risk=risk, dp_blocker=blocker)

    def disclosure(self, institutions: list[str]) -> list[dict[str, str]]:
        batch = f"{len(self.keys)} {self.key_column} keys"
        what = {
            "flagged": f"for each of {batch}, whether at least one institution holds a row of it",
            "members": f"for each of {batch}, how many institutions hold a row of it",
            "overlap": f"only how many of {batch} at least one institution holds a row of",
        }[self.question]
        if self.amount:
            what += ", and the amount of their rows at every institution, summed"
        gate = self.known_entities(len(institutions))
        if gate is not None:
            what += f", {gate.describe()}"
        return risk_disclosure(self.analyst, what, institutions)

    def known_entities(self, parties: int) -> KnownEntities | None:
        """The minimum-batch check, where a policy asks a batch of more than one key."""
        if self.controls.min_entities <= 1:
            return None  # a point query: its answer is the very bit the gate would open
        return known_entities(self.keys, self.controls, parties)


@dataclass(frozen=True)
class CheckOutcome(Outcome):
    """Per key, the bit or the count the plan asked."""

    kind = "check"

    keys: list[str] = field(default_factory=list)
    question: Question = "flagged"
    answers: list[int] = field(default_factory=list)  # per key 0/1 or a count; [n] for overlap
    amount: Decimal | None = None  # the members' amounts on the keys, summed (if asked)

    def released(self) -> dict[str, Any]:
        released = {"kind": self.kind, "question": self.question, "answers": self.answers}
        return released if self.amount is None else {**released, "amount": str(self.amount)}

    def withheld(self) -> list[dict[str, Any]]:
        return []

    def records(self) -> list[dict[str, Any]]:
        if self.question == "overlap":
            record: dict[str, Any] = {"keys": len(self.keys), "overlap": self.answers[0]}
            return [record if self.amount is None else {**record, "amount": str(self.amount)}]
        value = (lambda a: bool(a)) if self.question == "flagged" else (lambda a: a)
        return [{"key": k, self.question: value(a)} for k, a in zip(self.keys, self.answers)]

    def to_json(self, request: Request | None = None) -> dict[str, Any]:
        if self.question == "overlap":
            return {"kind": self.kind, "question": self.question, **self.records()[0]}
        return {"kind": self.kind, "question": self.question, "keys": self.records()}

    def display(self, request: Request | None = None) -> Display:
        if self.question == "overlap":
            note = f"{self.answers[0]:,} of {len(self.keys):,} keys flagged at some member"
            if self.amount is not None:
                note += f"; their alerts' amounts total {self.amount:,}"
            return Display((), (), (note,))
        if self.question == "flagged":
            rows = tuple((k, "yes" if a else "no") for k, a in zip(self.keys, self.answers))
            hits = sum(1 for a in self.answers if a)
            return Display(
                ("key", "flagged at a member"), rows, (f"{hits} of {len(rows)} flagged",)
            )
        rows = tuple((k, str(a)) for k, a in zip(self.keys, self.answers))
        return Display(("key", "members that flagged it"), rows)


class Checks(Computation[CheckRequest, CheckPlan, CheckOutcome]):
    """Entity checks, as the gateway, the nodes and the receiver use them."""

    kind = "check"
    request_type = CheckRequest
    plan_type = CheckPlan
    outcome_type = CheckOutcome
    lane = "short"
    outputs = ("flagged", "members", "overlap", "amount")

    def check(self, plan: CheckPlan, schema: DatasetSchema, parties: int) -> None:
        plan.check_schema(schema)
        check_key_column(schema, plan.key_column)
        if plan.amount:
            ALERT_AMOUNT.check_schema(schema)

    def local_inputs(self, plan: CheckPlan, step: dict[str, Any], data: LocalData) -> ProgramCall:
        where, column = data.where, plan.key_column
        args: dict[str, Any] = {
            "question": plan.question,
            # bounds a count of members (at most m) or of keys (the overlap)
            "bits": (max(data.parties, len(plan.keys)) + 1).bit_length() + 1,
        }
        if plan.amount:  # the keys are distinct: one row each, in order
            features: list[str | FeatureSpec] = ["lenders", ALERT_AMOUNT]
            local = local_entity_features(
                data.cursor,
                data.schema,
                plan.keys,
                features,
                key_column=column,
                where=where,
                max_keys=MAX_WATCHLIST,
            )
            present = local[:, 0]
            args["amount"] = int(sum(local[:, 1]))
            args["amount_bits"] = (
                ALERT_AMOUNT.joint_bound(data.schema, data.parties).bit_length() + 2
            )
        else:
            present = local_presence(
                data.cursor,
                data.schema,
                plan.keys,
                key_column=column,
                where=where,
                max_keys=MAX_WATCHLIST,
            )
        args["presence"] = present
        gate = plan.known_entities(data.parties)
        if gate is not None:
            args.update(gate.program_args(present))
        return ProgramCall("check:entity_check", args)

    def visible(self, plan: CheckPlan) -> frozenset[str]:
        return frozenset() if plan.controls.min_entities <= 1 else frozenset({ENOUGH_KNOWN})

    def run(self, plan: CheckPlan, execution: Execution) -> Blocks:
        blocks = execution.run_step({})
        gate = plan.known_entities(execution.parties)
        if gate is not None:
            gate.check(blocks)
        return {}

    def decode(
        self, plan: CheckPlan, blocks: Blocks, schema: DatasetSchema, parties: int
    ) -> CheckOutcome:
        if plan.question == "overlap":
            (overlap,) = block(blocks, "overlap", 1)
            if not 0 <= overlap <= len(plan.keys):
                raise IntegrityError("the nodes released an overlap out of range")
            amount = None
            if plan.amount:
                (total,) = block(blocks, "amount", 1)
                if total < 0:
                    raise IntegrityError("the nodes released a negative amount")
                amount = Decimal(total).scaleb(-schema.numeric("amount").scale)
            return CheckOutcome(list(plan.keys), plan.question, [overlap], amount)
        answers = block(blocks, plan.question, len(plan.keys))
        if plan.question == "flagged":
            answers = [int(b) for b in bits(answers, "flags")]
        elif any(not 0 <= a <= parties for a in answers):
            raise IntegrityError("the nodes released a member count out of range")
        return CheckOutcome(list(plan.keys), plan.question, answers)

    def request_from_proto(
        self, message: gateway_pb2.CheckJob, common: dict[str, Any]
    ) -> CheckRequest:
        return CheckRequest(**fields_set(message), **common)

    def job_message(
        self,
        keys: Sequence[str] = (),
        key_column: str = "",
        question: str = "",
        amount: bool = False,
    ) -> gateway_pb2.CheckJob:
        """Empty values are left to the gateway's defaults (counterparty_lei, flagged)."""
        return gateway_pb2.CheckJob(
            keys=keys, key_column=key_column, question=question, amount=amount
        )
