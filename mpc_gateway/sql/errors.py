"""Where in a statement a refusal points: line and column, from sqlglot's token offsets.

sqlglot 30 keeps, on the nodes built from tokens (identifiers, literals, function
names), ``meta`` with the token's ``start`` and ``end`` character offsets; a node
without its own takes the earliest of its descendants'. The refusal is an
:class:`~mpc_gateway.errors.InvalidQueryError` (INVALID_ARGUMENT at the gateway)
whose message starts with ``at line L, column C:``.
"""

from __future__ import annotations

from pydantic import ValidationError
from sqlglot import exp

from mpc_gateway.errors import InvalidQueryError

__all__ = ["refusal", "refusal_at", "position", "line_column", "problem"]


def line_column(text: str, offset: int) -> tuple[int, int]:
    """The 1-based line and column of character ``offset`` of ``text``."""
    before = text[:offset]
    line = before.count("\n") + 1
    return line, offset - (before.rfind("\n") + 1) + 1


def position(node: exp.Expression) -> int | None:
    """The offset of the first character of ``node`` in the statement, if sqlglot kept it."""
    starts = [n.meta["start"] for n in node.walk() if "start" in n.meta]
    return min(starts) if starts else None


def refusal(text: str, node: exp.Expression | None, reason: str) -> InvalidQueryError:
    """The error refusing ``node`` of statement ``text`` for ``reason``."""
    return refusal_at(text, None if node is None else position(node), reason)


def refusal_at(text: str, offset: int | None, reason: str) -> InvalidQueryError:
    """The error refusing what starts at character ``offset`` of ``text`` (None: unknown)."""
    if offset is None:
        return InvalidQueryError(f"SQL: {reason}")
    line, column = line_column(text, offset)
    return InvalidQueryError(f"SQL at line {line}, column {column}: {reason}")


def problem(err: ValidationError) -> str:
    """A request model's first validation error as ``field: message``."""
    first = err.errors()[0]
    return f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
