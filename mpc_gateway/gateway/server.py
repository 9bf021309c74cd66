"""The gateway's gRPC face: a thin servicer over :class:`~mpc_gateway.gateway.service.Gateway`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2
from pydantic import BaseModel, ValidationError

from mpc_gateway.errors import GatewayError, InvalidRequestError
from mpc_gateway.gateway.governance import PendingQuery
from mpc_gateway.gateway.registry import RegisteredModel
from mpc_gateway.gateway.service import Gateway, Release, RiskRelease
from mpc_gateway.pki import Identity
from mpc_gateway.policy import SignedApproval
from mpc_gateway.proto.v1 import gateway_pb2, gateway_pb2_grpc
from mpc_gateway.query.models import QuerySpec
from mpc_gateway.risk import ScoringModel, SealedWeights
from mpc_gateway.risk.jobs import RiskRequest
from mpc_gateway.rpc.audit_servicer import audit_service
from mpc_gateway.rpc.auth import caller_certificate_sha256, caller_identity
from mpc_gateway.rpc.convert import dataset_to_proto, spec_from_proto, value_to_proto
from mpc_gateway.rpc.errors import translate_errors
from mpc_gateway.rpc.risk_convert import outcome_to_proto, risk_request_from_proto
from mpc_gateway.rpc.server import Service, build_server, serve_until_signalled
from mpc_gateway.settings import GatewaySettings

__all__ = ["GatewayServicer", "ApprovalServicer", "serve_gateway"]

T = TypeVar("T", bound=BaseModel)
M = TypeVar("M")
S = TypeVar("S")

log = logging.getLogger(__name__)


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def ListDatasets(
        self, request: gateway_pb2.ListDatasetsRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.ListDatasetsResponse:
        with translate_errors(context):
            nodes = [p.name for p in self.gateway.dispatcher.parties]
            schemas = self.gateway.datasets(caller_identity(context))
            return gateway_pb2.ListDatasetsResponse(
                datasets=[dataset_to_proto(s, nodes) for s in schemas]
            )
        raise AssertionError("unreachable")

    def RunQuery(
        self, request: gateway_pb2.QueryRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.QueryResult:
        with translate_errors(context):
            caller, certificate = caller_identity(context), caller_certificate_sha256(context)
            spec = self._read(caller, request.dataset, certificate, spec_from_proto, request)
            release = self.gateway.run_query(caller, spec, certificate)
            assert isinstance(release, Release)
            return release_to_proto(release)
        raise AssertionError("unreachable")

    def ExplainQuery(
        self, request: gateway_pb2.QueryRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.QueryExplanation:
        with translate_errors(context):
            return self._explain(context, spec_from_proto(request))
        raise AssertionError("unreachable")

    def _read(self, caller: Identity, dataset: str, certificate: str,
              convert: Callable[[M], S], request: M) -> S:  # fmt: skip
        """The request as a query; a malformed one is refused, and logged as refused."""
        try:
            return convert(request)
        except GatewayError as err:
            self.gateway.refuse_malformed(caller, dataset, err, certificate)
            raise

    def _explain(
        self, context: grpc.ServicerContext, spec: QuerySpec | RiskRequest
    ) -> gateway_pb2.QueryExplanation:
        decision, report = self.gateway.explain(caller_identity(context), spec)
        return gateway_pb2.QueryExplanation(
            allowed=decision.allowed,
            plan_hash=decision.plan.plan_hash,
            report_json=json.dumps(report),
        )

    def RunRiskQuery(
        self, request: gateway_pb2.RiskQueryRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.RiskResult:
        with translate_errors(context):
            caller, certificate = caller_identity(context), caller_certificate_sha256(context)
            spec = self._read(
                caller, request.dataset, certificate, risk_request_from_proto, request
            )
            release = self.gateway.run_query(caller, spec, certificate)
            assert isinstance(release, RiskRelease)
            return risk_release_to_proto(release)
        raise AssertionError("unreachable")

    def ExplainRiskQuery(
        self, request: gateway_pb2.RiskQueryRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.QueryExplanation:
        with translate_errors(context):
            return self._explain(context, risk_request_from_proto(request))
        raise AssertionError("unreachable")

    def RegisterModel(
        self, request: gateway_pb2.RegisterModelRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.ModelInfo:
        with translate_errors(context):
            model = _parse(ScoringModel, request.model_json, "model")
            sealed = (
                _parse(SealedWeights, request.sealed_weights_json, "sealed weights")
                if request.sealed_weights_json
                else None
            )
            return model_to_proto(
                self.gateway.register_model(caller_identity(context), model, sealed)
            )
        raise AssertionError("unreachable")

    def ListModels(
        self, request: gateway_pb2.ListModelsRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.ListModelsResponse:
        with translate_errors(context):
            models = self.gateway.registered_models(caller_identity(context))
            return gateway_pb2.ListModelsResponse(models=[model_to_proto(m) for m in models])
        raise AssertionError("unreachable")

    def GetQueryStatus(
        self, request: gateway_pb2.QueryStatusRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.QueryStatus:
        with translate_errors(context):
            query = self.gateway.status(caller_identity(context), request.query_id)
            return status_to_proto(query, self.gateway)
        raise AssertionError("unreachable")


class ApprovalServicer(gateway_pb2_grpc.ApprovalServiceServicer):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def ListPending(
        self, request: gateway_pb2.ListPendingRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.ListPendingResponse:
        with translate_errors(context):
            queries = self.gateway.pending(caller_identity(context))
            return gateway_pb2.ListPendingResponse(
                queries=[pending_to_proto(q, self.gateway) for q in queries]
            )
        raise AssertionError("unreachable")

    def Decide(
        self, request: gateway_pb2.ApprovalDecision, context: grpc.ServicerContext
    ) -> gateway_pb2.QueryStatus:
        with translate_errors(context):
            try:
                signed = SignedApproval.model_validate_json(request.signed_approval_json)
            except ValidationError as err:
                raise InvalidRequestError(
                    f"the signed approval is malformed: {err.errors()[0]['msg']}"
                ) from None
            query = self.gateway.decide(caller_identity(context), request.query_id, signed)
            return status_to_proto(query, self.gateway)
        raise AssertionError("unreachable")


def release_to_proto(release: Release) -> gateway_pb2.QueryResult:
    table = release.table
    suppressed = dict(table.suppressed)
    rows = [
        gateway_pb2.ResultRow(group=group, values=[value_to_proto(v) for v in values],
                              suppressed_by=suppressed.get(group, ()))
        for group, values in table.rows
    ]  # fmt: skip
    return gateway_pb2.QueryResult(
        query_id=release.query_id, plan_hash=release.plan.plan_hash, dataset=release.plan.dataset,
        group_by=table.group_by or "", columns=table.columns, rows=rows, sequence=release.sequence,
        controls_json=release.plan.controls.model_dump_json(),
        timing=gateway_pb2.Timing(total_ms=release.total_ms, mpc_ms=release.mpc_ms, local_ms=release.local_ms),
    )  # fmt: skip


def risk_release_to_proto(release: RiskRelease) -> gateway_pb2.RiskResult:
    job = release.plan.job
    return gateway_pb2.RiskResult(
        query_id=release.query_id, plan_hash=release.plan.plan_hash, dataset=release.plan.dataset,
        model_id=getattr(job, "model_id", ""), sequence=release.sequence,
        controls_json=release.plan.controls.model_dump_json(),
        timing=gateway_pb2.Timing(total_ms=release.total_ms, mpc_ms=release.mpc_ms, local_ms=release.local_ms),
        **outcome_to_proto(release.outcome),
    )  # fmt: skip


def model_to_proto(entry: RegisteredModel) -> gateway_pb2.ModelInfo:
    model = entry.model
    return gateway_pb2.ModelInfo(
        model_id=entry.model_id, model_json=model.model_dump_json(), owner=model.owner,
        name=model.name, weights_secret=model.weights_secret, registered_ms=entry.registered_ms,
    )  # fmt: skip


def _parse(kind: type[T], text: str, what: str) -> T:
    try:
        return kind.model_validate_json(text)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise InvalidRequestError(f"the {what} is malformed: {where}: {first['msg']}") from None


def status_to_proto(query: PendingQuery, gateway: Gateway) -> gateway_pb2.QueryStatus:
    status = gateway_pb2.QueryStatus(
        query_id=query.query_id, state=query.state, plan_hash=query.plan.plan_hash
    )
    if query.state == "waiting":
        status.waiting_for.extend(query.waiting_for(gateway.ca))
    if isinstance(query.outcome, Release):
        status.result.CopyFrom(release_to_proto(query.outcome))
    elif isinstance(query.outcome, RiskRelease):
        status.risk_result.CopyFrom(risk_release_to_proto(query.outcome))
    elif isinstance(query.outcome, GatewayError):
        status.reason = query.outcome.public_message
    return status


def pending_to_proto(query: PendingQuery, gateway: Gateway) -> gateway_pb2.PendingQuery:
    needs = [
        gateway_pb2.ApprovalNeed(institution=need.owner, approvers=need.rule.approvers,
                                 quorum=need.rule.quorum, valid_for_hours=need.rule.valid_for_hours)
        for need in query.decision.approvals
    ]  # fmt: skip
    return gateway_pb2.PendingQuery(
        query_id=query.query_id, analyst=str(query.caller), dataset=query.plan.dataset,
        purpose=query.plan.purpose, plan_hash=query.plan.plan_hash, plan_json=query.plan.canonical().decode(),
        needs=needs, waiting_for=query.waiting_for(gateway.ca), submitted_ms=query.submitted_ms,
    )  # fmt: skip


def serve_gateway(settings: GatewaySettings) -> None:
    """Serve until SIGTERM/SIGINT."""
    gateway = Gateway(settings)
    services = [
        Service.of(gateway_pb2, gateway_pb2_grpc, "GatewayService", GatewayServicer(gateway)),
        Service.of(gateway_pb2, gateway_pb2_grpc, "ApprovalService", ApprovalServicer(gateway)),
        audit_service(gateway.audit.log),
    ]
    server, port, health = build_server(settings.listen, gateway.tls, services)
    # ready (SERVING) once the nodes' MPC session is open, so probes never send queries too early
    names = [service.name for service in services] + [""]
    for name in names:
        health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    server.start()

    def ready() -> None:
        for name in names:
            health.set(name, health_pb2.HealthCheckResponse.SERVING)

    gateway.dispatcher.open_session_in_background(then=ready)
    log.info(
        "gateway %s serving on port %d for nodes %s",
        settings.name,
        port,
        ", ".join(p.name for p in gateway.dispatcher.parties),
    )
    serve_until_signalled(server, health, gateway.close)
