"""Domain errors of mpc-gateway.

Every error a client may see derives from :class:`GatewayError` and carries a
``public_message``: words a person understands, never a data value. Each class
also says how it travels and how it ends a command: ``status`` is the name of
its gRPC status code (:mod:`mpc_gateway.rpc.errors` turns it into one, so this
module imports nothing from grpc) and ``exit_code`` is the CLI's exit code:

====================================  ===================  =====
error                                 gRPC status          exit
====================================  ===================  =====
InvalidRequestError, InvalidQueryError  INVALID_ARGUMENT   2
UnauthenticatedError, IntegrityError  UNAUTHENTICATED      3
PolicyDeniedError                     PERMISSION_DENIED    3
ApprovalMissingError                  FAILED_PRECONDITION  3
DisclosureRiskError                   FAILED_PRECONDITION  3
BudgetExhaustedError                  RESOURCE_EXHAUSTED   3
RequestTooLargeError                  RESOURCE_EXHAUSTED   2
NodeUnavailableError                  UNAVAILABLE          4
ShuttingDownError                     UNAVAILABLE          4
StorageUnavailableError               UNAVAILABLE          4
ProtocolAbortedError                  ABORTED              4
DeadlineExceededError, NoAnswerError  DEADLINE_EXCEEDED    4
ConfigurationError                    FAILED_PRECONDITION  5
InternalError (and the base)          INTERNAL             1
====================================  ===================  =====
"""

from __future__ import annotations

import re
from typing import ClassVar

__all__ = [
    "GatewayError",
    "InvalidRequestError",
    "InvalidQueryError",
    "UnauthenticatedError",
    "PolicyDeniedError",
    "ApprovalMissingError",
    "DisclosureRiskError",
    "BudgetExhaustedError",
    "RequestTooLargeError",
    "NodeUnavailableError",
    "ShuttingDownError",
    "StorageUnavailableError",
    "ProtocolAbortedError",
    "DeadlineExceededError",
    "NoAnswerError",
    "ConfigurationError",
    "IntegrityError",
    "InternalError",
]


class GatewayError(Exception):
    """Base of every error whose message may be shown to a client.

    ``query_id`` names the query the error is about, when there is one (a query
    waiting for approval keeps its id); it travels to clients beside the message.
    """

    status: ClassVar[str] = "INTERNAL"
    exit_code: ClassVar[int] = 1

    def __init__(self, public_message: str, query_id: str | None = None) -> None:
        super().__init__(public_message)
        self.public_message = public_message
        self.query_id = query_id


class InvalidRequestError(GatewayError):
    """A request is malformed or names something that does not exist."""

    status = "INVALID_ARGUMENT"
    exit_code = 2


class InvalidQueryError(InvalidRequestError):
    """The query is malformed or names something the dataset does not have."""


class UnauthenticatedError(GatewayError):
    """The caller presented no usable identity (certificate, signature)."""

    status = "UNAUTHENTICATED"
    exit_code = 3


class PolicyDeniedError(GatewayError):
    """A policy rule forbids this caller or this computation."""

    status = "PERMISSION_DENIED"
    exit_code = 3


class ApprovalMissingError(GatewayError):
    """The computation needs an approval that has not been given."""

    status = "FAILED_PRECONDITION"
    exit_code = 3


class DisclosureRiskError(GatewayError):
    """Releasing the result would disclose more than the output controls allow."""

    status = "FAILED_PRECONDITION"
    exit_code = 3


class BudgetExhaustedError(GatewayError):
    """The caller has used up an allowance: ``rule`` says which (daily queries, privacy)."""

    status = "RESOURCE_EXHAUSTED"
    exit_code = 3

    def __init__(
        self, public_message: str, query_id: str | None = None, *, rule: str | None = None
    ) -> None:
        super().__init__(public_message, query_id)
        # across the wire only the message travels, and it names the rule
        named = re.search(
            r"refused by rule (privacy\.budget|dataset\.daily_limit|pseudonyms\.daily_limit)",
            public_message,
        )
        self.rule = rule or (named.group(1) if named else "dataset.daily_limit")


class RequestTooLargeError(GatewayError):
    """A request is larger than its method accepts (see docs/limits.md)."""

    status = "RESOURCE_EXHAUSTED"
    exit_code = 2


class NodeUnavailableError(GatewayError):
    """A node could not be reached or stopped answering."""

    status = "UNAVAILABLE"
    exit_code = 4


class ShuttingDownError(GatewayError):
    """The server is draining before it stops: it takes no new calls, or ran out of grace."""

    status = "UNAVAILABLE"
    exit_code = 4


class StorageUnavailableError(GatewayError):
    """A server cannot write its audit log (a full or failing disk): it serves nothing."""

    status = "UNAVAILABLE"
    exit_code = 4


class ProtocolAbortedError(GatewayError):
    """The joint computation was torn down before it finished."""

    status = "ABORTED"
    exit_code = 4


class DeadlineExceededError(GatewayError):
    """The query did not finish within its deadline."""

    status = "DEADLINE_EXCEEDED"
    exit_code = 4


class NoAnswerError(DeadlineExceededError):
    """A peer never answered before the deadline: the call timed out, not the peer's own work.

    When a node freezes, the healthy nodes time out waiting for it inside the MPC
    step; this error marks the node whose call never returned, the one to blame.
    """


class ConfigurationError(GatewayError):
    """A configuration, schema or data file is inconsistent or invalid."""

    status = "FAILED_PRECONDITION"
    exit_code = 5


class IntegrityError(GatewayError):
    """Signed or hashed material does not verify."""

    status = "UNAUTHENTICATED"
    exit_code = 3


class InternalError(GatewayError):
    """A server failed in a way it did not foresee (see its log for the reference)."""
