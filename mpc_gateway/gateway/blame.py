"""Which failure of an order is its cause, whether its MPC session may stay, and what to retry.

When one node fails an order, the others usually fail too, as a consequence:
they time out waiting for it inside the MPC step, or the session is aborted
under them. The error the analyst gets names the cause, not a consequence.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future, wait
from typing import Any, TypeVar

from mpc_gateway.errors import (
    ApprovalMissingError,
    BudgetExhaustedError,
    ConfigurationError,
    GatewayError,
    IntegrityError,
    InvalidRequestError,
    NoAnswerError,
    PolicyDeniedError,
    ProtocolAbortedError,
    ShuttingDownError,
    UnauthenticatedError,
)
from mpc_gateway.gateway.batching import Queued

__all__ = ["all_refuse", "root_cause", "worth_again"]

log = logging.getLogger(__name__)

Q = TypeVar("Q", bound=Queued)

_REFUSAL_GRACE_S = 2.0  # how long the other nodes have to refuse an order one node refused
# what a node answers for an order it refused before joining the MPC step
_REFUSALS = (
    InvalidRequestError,
    PolicyDeniedError,
    ApprovalMissingError,
    BudgetExhaustedError,
    ConfigurationError,
    IntegrityError,
    UnauthenticatedError,
)


def all_refuse(first: GatewayError, calls: list[Future[Any]]) -> bool:
    """Whether every node refused the order before its MPC step (the session can stay).

    A node that refuses an order passes over its turn; if every node refused it
    (they check it identically: an invalid plan), nobody waits in the MPC step.
    A node that accepted is waiting for the refusing one: then the epoch goes.
    """
    if not isinstance(first, _REFUSALS):
        return False
    done, pending = wait(calls, timeout=_REFUSAL_GRACE_S)
    if pending:
        return False
    return all(isinstance(call.result()[1], _REFUSALS) for call in done)


def root_cause(failures: list[GatewayError]) -> GatewayError:
    """The first failure that is not merely the consequence of aborting the session.

    A node whose call never returned is the cause when others timed out: a frozen or
    cut-off node makes every healthy one wait for it inside the MPC step until the
    deadline, so their timeouts arrive first but only name themselves.
    """
    silent = [f for f in failures if isinstance(f, NoAnswerError)]
    if silent:
        waited = len(failures) - len(silent)
        also = f"; {waited} other node(s) timed out waiting for it" if waited else ""
        return NoAnswerError("; ".join(f.public_message for f in silent) + also, silent[0].query_id)
    for failure in failures:
        if not isinstance(failure, ProtocolAbortedError):
            return failure
    return failures[0]


def worth_again(batch: Sequence[Q], err: GatewayError) -> list[Q]:
    """The members of a failed message worth sending once more, in a new one (none: give up).

    All of them if every node found the session torn down under it (another query's
    failure, a stale session opening: nothing was released); all but the one a node
    refused, if a node named it (the others go on without it); otherwise none.
    """
    if isinstance(err, ShuttingDownError):
        return []
    if isinstance(err, ProtocolAbortedError):
        log.info(
            "queries %s met a torn-down MPC session (%s); retrying once",
            ", ".join(m.query_id for m in batch),
            err.public_message,
        )
        return list(batch)
    refused = next((m for m in batch if m.query_id == err.query_id), None)
    if refused is None or len(batch) == 1 or not isinstance(err, _REFUSALS):
        return []
    refused.fail(err)
    return [m for m in batch if m is not refused]
