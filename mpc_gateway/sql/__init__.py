"""SQL for analysts: a statement read into the request (hence the plan) a flag query makes.

See docs/sql.md for the grammar, what is refused and why. :func:`read_statement`
maps a statement onto the request models (and nothing else); :func:`present`
applies its aliases, ORDER BY and LIMIT to a released result at the receiver.
"""

from mpc_gateway.sql.present import present
from mpc_gateway.sql.select import OrderKey
from mpc_gateway.sql.statement import MAX_STATEMENT_CHARS, Statement, read_statement

__all__ = ["MAX_STATEMENT_CHARS", "OrderKey", "Statement", "present", "read_statement"]
