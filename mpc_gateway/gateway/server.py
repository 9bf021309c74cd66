"""The gateway's gRPC face: thin servicers over :class:`~mpc_gateway.gateway.service.Gateway`.

Who may call each method is in :data:`GATEWAY_ACCESS` and :data:`APPROVAL_ACCESS`
(default deny; the server's interceptor enforces them and turns domain errors
into statuses), so every method here only converts and delegates.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from typing import TypeVar

import grpc
from pydantic import BaseModel, ValidationError

from mpc_gateway.computations import MAX_STATEMENT_CHARS, Request
from mpc_gateway.computations.scoring import ScoringModel
from mpc_gateway.errors import GatewayError, InvalidRequestError
from mpc_gateway.gateway.lifecycle import TrackedQuery
from mpc_gateway.gateway.pending import EndedQuery
from mpc_gateway.gateway.record import request_refused
from mpc_gateway.gateway.registry import RegisteredModel
from mpc_gateway.gateway.service import Gateway
from mpc_gateway.lanes import LANES
from mpc_gateway.oprf import SignedRequest
from mpc_gateway.pki import Identity
from mpc_gateway.pki.sealing import SealedWeights
from mpc_gateway.policy import SignedApproval
from mpc_gateway.proto.v1 import gateway_pb2, gateway_pb2_grpc
from mpc_gateway.query.schema import DatasetSchema
from mpc_gateway.rpc.audit_servicer import audit_service
from mpc_gateway.rpc.auth import caller_certificate_sha256, current_caller
from mpc_gateway.rpc.convert import dataset_to_proto, request_from_proto, result_to_proto
from mpc_gateway.rpc.drain import Gate
from mpc_gateway.rpc.interceptor import RefusalHook
from mpc_gateway.rpc.server import Readiness, Service, build_server, serve_until_signalled
from mpc_gateway.settings import GatewaySettings

__all__ = [
    "GATEWAY_ACCESS",
    "APPROVAL_ACCESS",
    "GatewayServicer",
    "ApprovalServicer",
    "drain_gateway",
    "refusals_logged",
    "serve_gateway",
]

T = TypeVar("T", bound=BaseModel)

log = logging.getLogger(__name__)

_READERS = ("analyst/*", "auditor/*", "approver/*")

GATEWAY_ACCESS = {
    "ListDatasets": _READERS,
    "Run": ("analyst/*",),
    "Explain": ("analyst/*",),
    "GetQueryStatus": _READERS,
    "GetBudget": ("analyst/*",),
    "RegisterModel": ("analyst/*",),
    "ListModels": _READERS,
    # an institution pseudonymises its customers' national ids as its node
    "Pseudonymise": ("analyst/*", "node/*"),
}
APPROVAL_ACCESS = {"ListPending": ("approver/*",), "Decide": ("approver/*",)}


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def ListDatasets(
        self, request: gateway_pb2.ListDatasetsRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.ListDatasetsResponse:
        nodes = [p.name for p in self.gateway.dispatcher.parties]
        return gateway_pb2.ListDatasetsResponse(
            datasets=[dataset_to_proto(s, nodes) for s in self.gateway.datasets()]
        )

    def _read(self, message: gateway_pb2.ComputationRequest, certificate: str) -> Request:
        """The request a message carries; a malformed one is refused, and logged as refused."""
        statement = message.sql[:MAX_STATEMENT_CHARS]
        with self.gateway.reading(current_caller(), message.dataset, certificate, statement):
            request = request_from_proto(message, self._schemas())
        return request

    def _schemas(self) -> dict[str, DatasetSchema]:
        """The datasets by name: a SQL statement's names are checked against them."""
        return {schema.name: schema for schema in self.gateway.datasets()}

    def Run(
        self, request: gateway_pb2.ComputationRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.ComputationResult:
        certificate = caller_certificate_sha256(context)
        relayed = self.gateway.run(
            current_caller(),
            self._read(request, certificate),
            certificate,
            request.receiver_certificate.decode(errors="replace"),
        )
        return result_to_proto(relayed)

    def Explain(
        self, request: gateway_pb2.ComputationRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.QueryExplanation:
        read = request_from_proto(request, self._schemas())
        decision, report = self.gateway.explain(current_caller(), read)
        return gateway_pb2.QueryExplanation(
            allowed=decision.allowed,
            plan_hash=decision.plan.plan_hash,
            report_json=json.dumps(report),
        )

    def GetBudget(
        self, request: gateway_pb2.BudgetRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.BudgetReport:
        lines = self.gateway.budgets(current_caller(), request.dataset)
        return gateway_pb2.BudgetReport(
            budgets=[gateway_pb2.Budget(**line.as_dict()) for line in lines]
        )

    def RegisterModel(
        self, request: gateway_pb2.RegisterModelRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.ModelInfo:
        model = _parse(ScoringModel, request.model_json, "model")
        sealed = (
            _parse(SealedWeights, request.sealed_weights_json, "sealed weights")
            if request.sealed_weights_json
            else None
        )
        return model_to_proto(self.gateway.register_model(current_caller(), model, sealed))

    def ListModels(
        self, request: gateway_pb2.ListModelsRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.ListModelsResponse:
        models = self.gateway.registered_models()
        return gateway_pb2.ListModelsResponse(models=[model_to_proto(m) for m in models])

    def Pseudonymise(
        self, request: gateway_pb2.PseudonymRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.PseudonymReply:
        signed = request.signed
        answers = self.gateway.pseudonyms.pseudonymise(
            current_caller(),
            list(request.points),
            request.purpose,
            SignedRequest(signed.body, signed.signature, signed.signing_certificate),
        )
        return gateway_pb2.PseudonymReply(
            query_id=answers.query_id,
            threshold=answers.threshold,
            answers=[
                gateway_pb2.NodePseudonyms(
                    node=a.node,
                    party=a.party,
                    points=a.points,
                    proof=a.proof,
                    key_statement=a.key_statement,
                    key_signature=a.key_signature,
                    signing_certificate=a.signing_certificate,
                )
                for a in answers.nodes
            ],
        )

    def GetQueryStatus(
        self, request: gateway_pb2.QueryStatusRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.QueryStatus:
        query = self.gateway.status(current_caller(), request.query_id)
        return status_to_proto(query, self.gateway)


class ApprovalServicer(gateway_pb2_grpc.ApprovalServiceServicer):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def ListPending(
        self, request: gateway_pb2.ListPendingRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.ListPendingResponse:
        queries = self.gateway.pending(current_caller())
        return gateway_pb2.ListPendingResponse(
            queries=[pending_to_proto(q, self.gateway) for q in queries]
        )

    def Decide(
        self, request: gateway_pb2.ApprovalDecision, context: grpc.ServicerContext
    ) -> gateway_pb2.QueryStatus:
        signed = _parse(SignedApproval, request.signed_approval_json, "signed approval")
        query = self.gateway.decide(current_caller(), request.query_id, signed)
        return status_to_proto(query, self.gateway)


def model_to_proto(entry: RegisteredModel) -> gateway_pb2.ModelInfo:
    model = entry.model
    return gateway_pb2.ModelInfo(
        model_id=entry.model_id,
        model_json=model.model_dump_json(),
        owner=model.owner,
        name=model.name,
        weights_secret=model.weights_secret,
        registered_ms=entry.registered_ms,
    )


def _parse(kind: type[T], text: str, what: str) -> T:
    try:
        return kind.model_validate_json(text)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise InvalidRequestError(f"the {what} is malformed: {where}: {first['msg']}") from None


def status_to_proto(query: TrackedQuery | EndedQuery, gateway: Gateway) -> gateway_pb2.QueryStatus:
    if isinstance(query, EndedQuery):  # after a restart: its state and why, no result
        return gateway_pb2.QueryStatus(
            query_id=query.query_id,
            state=query.state,
            plan_hash=query.plan_hash,
            reason=query.reason or "released before the gateway restarted; results are not kept",
        )
    with query.lock:
        state, outcome = query.state, query.outcome
    status = gateway_pb2.QueryStatus(
        query_id=query.query_id, state=str(state), plan_hash=query.plan.plan_hash
    )
    if state == "waiting":
        status.waiting_for.extend(query.waiting_for(gateway.ca))
    if isinstance(outcome, GatewayError):
        status.reason = outcome.public_message
    elif outcome is not None:
        status.result.CopyFrom(result_to_proto(outcome))
    return status


def pending_to_proto(query: TrackedQuery, gateway: Gateway) -> gateway_pb2.PendingQuery:
    needs = [
        gateway_pb2.ApprovalNeed(
            institution=need.owner,
            approvers=need.rule.approvers,
            quorum=need.rule.quorum,
            valid_for_hours=need.rule.valid_for_hours,
        )
        for need in query.decision.approvals
    ]
    return gateway_pb2.PendingQuery(
        query_id=query.query_id,
        analyst=str(query.caller),
        dataset=query.plan.dataset,
        purpose=query.plan.purpose,
        plan_hash=query.plan.plan_hash,
        plan_json=query.plan.canonical().decode(),
        needs=needs,
        waiting_for=query.waiting_for(gateway.ca),
        submitted_ms=query.submitted_ms,
    )


def gateway_services(gateway: Gateway) -> list[Service]:
    """Everything the gateway serves, with who may call what."""
    return [
        Service.of(
            gateway_pb2,
            gateway_pb2_grpc,
            "GatewayService",
            GatewayServicer(gateway),
            GATEWAY_ACCESS,
        ),
        Service.of(
            gateway_pb2,
            gateway_pb2_grpc,
            "ApprovalService",
            ApprovalServicer(gateway),
            APPROVAL_ACCESS,
        ),
        audit_service(gateway.audit.log),
    ]


def drain_gateway(gateway: Gateway, calls: Gate, deadline: float) -> None:
    """Let the calls and queries under way finish by ``deadline``, end the rest, then close.

    A query still running at the deadline ends with ShuttingDownError (UNAVAILABLE) and
    its audit outcome, as any failed query, before the audit log and ledgers close.
    """
    if not _idle(gateway, calls, deadline):
        grace = gateway.settings.shutdown_grace_s
        running = gateway.executions.busy
        log.warning("%d queries did not finish within %.0f s: ending them", running, grace)
        gateway.dispatcher.stop(
            f"the gateway is shutting down and the query did not finish within its {grace:g} s "
            "grace period; submit it again"
        )
        if not _idle(gateway, calls, time.monotonic() + _ENDING_S):
            log.error("queries did not end in time; the next start records them as abandoned")
    gateway.close()
    gateway.dispatcher.close()  # calls still waiting on a node end, so the process can exit


def _idle(gateway: Gateway, calls: Gate, deadline: float) -> bool:
    # the calls first: one may be planning a query, or an approval start one; once no call
    # runs (and the gate lets no new one in), no query can start any more
    return calls.wait_idle(deadline - time.monotonic()) and gateway.executions.wait_idle(
        deadline - time.monotonic()
    )


_ENDING_S = 10.0  # after the grace period, for stopped queries to record their outcome


def refusals_logged(gateway: Gateway) -> RefusalHook:
    """The server's hook for requests refused before they were read: each is logged."""

    def log_refusal(caller: Identity, method: str, err: GatewayError) -> None:
        request_refused(gateway.audit, str(caller), method, err)

    return log_refusal


def serve_gateway(settings: GatewaySettings) -> None:
    """Serve until SIGTERM/SIGINT, then drain (:func:`drain_gateway`) and stop."""
    gateway = Gateway(settings)
    services = gateway_services(gateway)
    gate = Gate("the gateway")
    server, port, health = build_server(
        settings.listen,
        gateway.tls,
        services,
        gateway.layout.trust_domain,
        gate=gate,
        on_refusal=refusals_logged(gateway),
    )
    # ready (SERVING) once every lane's MPC session is open at the nodes, so probes never send
    # queries too early, and while the audit log can be written
    readiness = Readiness(health, [service.name for service in services])
    for lane in LANES:
        readiness.hold(f"mpc:{lane}", f"the {lane} lane's MPC session is not open yet")
    gateway.audit.log.watch_storage(readiness.storage)
    readiness.recheck("storage", gateway.audit.log.recheck_storage)
    server.start()
    for lane in LANES:
        gateway.dispatcher.open_session_in_background(
            lane, then=functools.partial(readiness.release, f"mpc:{lane}")
        )
    log.info(
        "gateway %s serving on port %d for nodes %s",
        settings.name,
        port,
        ", ".join(p.name for p in gateway.dispatcher.parties),
    )
    drain = functools.partial(drain_gateway, gateway, gate)
    serve_until_signalled(server, health, gate, drain, settings.shutdown_grace_s)
