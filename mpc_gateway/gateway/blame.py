"""Which failure of an order is its cause, and whether its MPC session may stay.

When one node fails an order, the others usually fail too, as a consequence:
they time out waiting for it inside the MPC step, or the session is aborted
under them. The error the analyst gets names the cause, not a consequence.
"""

from __future__ import annotations

from concurrent.futures import Future, wait
from typing import Any

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
    UnauthenticatedError,
)

__all__ = ["all_refuse", "root_cause"]

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
