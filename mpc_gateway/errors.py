"""Domain errors of mpc-gateway.

Every error a client may see derives from :class:`GatewayError` and carries a
``public_message``: words a person understands, never a data value. The mapping
from these errors to gRPC status codes lives in :mod:`mpc_gateway.rpc.errors`,
so this module imports nothing from grpc.
"""

from __future__ import annotations

__all__ = [
    "GatewayError",
    "InvalidRequestError",
    "InvalidQueryError",
    "UnauthenticatedError",
    "PolicyDeniedError",
    "ApprovalMissingError",
    "DisclosureRiskError",
    "BudgetExhaustedError",
    "NodeUnavailableError",
    "ProtocolAbortedError",
    "DeadlineExceededError",
    "ConfigurationError",
    "IntegrityError",
]


class GatewayError(Exception):
    """Base of every error whose message may be shown to a client.

    ``query_id`` names the query the error is about, when there is one (a query
    waiting for approval keeps its id); it travels to clients beside the message.
    """

    def __init__(self, public_message: str, query_id: str | None = None) -> None:
        super().__init__(public_message)
        self.public_message = public_message
        self.query_id = query_id


class InvalidRequestError(GatewayError):
    """A request is malformed or names something that does not exist."""


class InvalidQueryError(InvalidRequestError):
    """The query is malformed or names something the dataset does not have."""


class UnauthenticatedError(GatewayError):
    """The caller presented no usable identity (certificate, signature)."""


class PolicyDeniedError(GatewayError):
    """A policy rule forbids this caller or this computation."""


class ApprovalMissingError(GatewayError):
    """The computation needs an approval that has not been given."""


class DisclosureRiskError(GatewayError):
    """Releasing the result would disclose more than the output controls allow."""


class BudgetExhaustedError(GatewayError):
    """The caller has used up its query allowance."""


class NodeUnavailableError(GatewayError):
    """A node could not be reached or stopped answering."""


class ProtocolAbortedError(GatewayError):
    """The joint computation was torn down before it finished."""


class DeadlineExceededError(GatewayError):
    """The query did not finish within its deadline."""


class ConfigurationError(GatewayError):
    """A configuration, schema or data file is inconsistent or invalid."""


class IntegrityError(GatewayError):
    """Signed or hashed material does not verify."""
