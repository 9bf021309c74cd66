"""Risk queries, results and scoring models between their protobuf and Python forms."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

from pydantic import ValidationError

from mpc_gateway.errors import InvalidQueryError
from mpc_gateway.proto.v1 import gateway_pb2
from mpc_gateway.query.where import parse_where
from mpc_gateway.risk.jobs import RiskOutcome, RiskRequest

__all__ = [
    "risk_request_from_proto",
    "outcome_to_proto",
    "outcome_from_proto",
    "hhi_text",
]

_JOBS = {"score": "score", "concentration": "concentration", "quantiles": "quantile",
         "histogram": "histogram"}  # fmt: skip


def _problem(err: ValidationError) -> str:
    first = err.errors()[0]
    return f"invalid risk query field {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


def risk_request_from_proto(request: gateway_pb2.RiskQueryRequest) -> RiskRequest:
    which = request.WhichOneof("job")
    if which is None:
        raise InvalidQueryError(
            "a risk query needs a job: score, concentration, quantiles or histogram"
        )
    message = getattr(request, which)
    job: dict[str, Any] = {"kind": _JOBS[which]}
    for field, value in message.ListFields():  # only what the caller set: defaults stay defaults
        job[field.name] = value if isinstance(value, str | int) else tuple(value)  # repeated
    try:
        return RiskRequest(dataset=request.dataset, job=job, filter=parse_where(request.where),
                           purpose=request.purpose)  # fmt: skip
    except ValidationError as err:
        raise InvalidQueryError(_problem(err)) from None


def hhi_text(points: Fraction) -> str:
    return str(round(Decimal(points.numerator) / Decimal(points.denominator), 6))


def outcome_to_proto(outcome: RiskOutcome) -> dict[str, Any]:
    """The fields of a RiskResult that carry ``outcome`` (the caller adds ids and timing)."""
    fields: dict[str, Any] = {
        "kind": outcome.kind,
        "scores": [str(s) for s in outcome.scores],
        "score_denominator": str(outcome.denominator) if outcome.scores else "",
        "probabilities": outcome.probabilities,
        "decisions": outcome.decisions,
        "units": outcome.units,
        "over_limit": outcome.over_limit,
        "hhi": "" if outcome.hhi is None else hhi_text(outcome.hhi),
        "quantiles": [
            gateway_pb2.QuantileValue(level=str(q), value="" if v is None else str(v),
                                      suppressed=v is None)
            for q, v in outcome.quantiles
        ],
        "bins": [gateway_pb2.HistogramBin(low=str(lo), high=str(hi), count=c)
                 for lo, hi, c in outcome.bins],
        "rounds": outcome.rounds,
    }  # fmt: skip
    if outcome.count is not None:
        fields["count"] = outcome.count
    if outcome.hhi_over_limit is not None:
        fields["hhi_over_limit"] = outcome.hhi_over_limit
    return fields


def outcome_from_proto(result: gateway_pb2.RiskResult) -> RiskOutcome:
    return RiskOutcome(
        kind=result.kind,
        scores=[int(s) for s in result.scores],
        denominator=int(result.score_denominator or 1),
        probabilities=list(result.probabilities),
        decisions=list(result.decisions),
        count=result.count if result.HasField("count") else None,
        units=list(result.units),
        over_limit=list(result.over_limit),
        hhi=Fraction(Decimal(result.hhi)) if result.hhi else None,
        hhi_over_limit=result.hhi_over_limit if result.HasField("hhi_over_limit") else None,
        quantiles=[(Decimal(q.level), None if q.suppressed else Decimal(q.value))
                   for q in result.quantiles],
        bins=[(Decimal(b.low), Decimal(b.high), b.count if b.HasField("count") else None)
              for b in result.bins],
        rounds=result.rounds,
    )  # fmt: skip
