"""The gateway's gRPC face: a thin servicer over :class:`~mpc_gateway.gateway.service.Gateway`."""

from __future__ import annotations

import logging

import grpc

from mpc_gateway.gateway.service import Gateway
from mpc_gateway.proto.v1 import audit_pb2, audit_pb2_grpc, gateway_pb2, gateway_pb2_grpc
from mpc_gateway.rpc.audit_servicer import AuditServicer
from mpc_gateway.rpc.auth import caller_certificate_sha256, caller_identity
from mpc_gateway.rpc.convert import dataset_to_proto, spec_from_proto, value_to_proto
from mpc_gateway.rpc.errors import translate_errors
from mpc_gateway.rpc.server import Service, build_server, serve_until_signalled
from mpc_gateway.settings import GatewaySettings

__all__ = ["GatewayServicer", "serve_gateway"]

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
            caller = caller_identity(context)
            release = self.gateway.run_query(
                caller, spec_from_proto(request), caller_certificate_sha256(context)
            )
            table = release.table
            return gateway_pb2.QueryResult(
                query_id=release.query_id,
                plan_hash=release.plan.plan_hash,
                dataset=release.plan.dataset,
                group_by=table.group_by or "",
                columns=table.columns,
                rows=[
                    gateway_pb2.ResultRow(
                        group=group,
                        values=[value_to_proto(v) for v in values],
                        suppressed_by=dict(table.suppressed).get(group, ()),
                    )
                    for group, values in table.rows
                ],
                timing=gateway_pb2.Timing(
                    total_ms=release.total_ms, mpc_ms=release.mpc_ms, local_ms=release.local_ms
                ),
                sequence=release.sequence,
            )
        raise AssertionError("unreachable")


def serve_gateway(settings: GatewaySettings) -> None:
    """Serve until SIGTERM/SIGINT."""
    gateway = Gateway(settings)
    services = [
        Service(
            gateway_pb2_grpc.add_GatewayServiceServicer_to_server,
            GatewayServicer(gateway),
            gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name,
        ),
        Service(
            audit_pb2_grpc.add_AuditServiceServicer_to_server,
            AuditServicer(gateway.audit.log),
            audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name,
        ),
    ]
    server, port, health = build_server(settings.listen, gateway.tls, services)
    server.start()
    gateway.dispatcher.open_session()
    log.info(
        "gateway %s serving on port %d for nodes %s",
        settings.name,
        port,
        ", ".join(p.name for p in gateway.dispatcher.parties),
    )
    serve_until_signalled(server, health, gateway.audit.close)
