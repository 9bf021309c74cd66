"""Parse an analyst's filter text into a :data:`~mpc_gateway.query.filters.Filter`.

Grammar (keywords case-insensitive)::

    expr    := conj ("OR" conj)*
    conj    := atom ("AND" atom)*
    atom    := "(" expr ")"
             | column op literal                      op: = != <> < <= > >=
             | column ["NOT"] "IN" "(" literal ("," literal)* ")"
    literal := number | 'text'                        ('' escapes a quote)

The parser only builds the tree; whether columns and values fit the dataset is
checked by :func:`~mpc_gateway.query.filters.validate_filter`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import ValidationError

from mpc_gateway.errors import InvalidQueryError
from mpc_gateway.query.filters import BoolExpr, Comparison, Filter, InList

__all__ = ["MAX_FILTER_CHARS", "MAX_FILTER_DEPTH", "parse_where"]

MAX_FILTER_CHARS = 20_000
MAX_FILTER_DEPTH = 32

_TOKEN = re.compile(
    r"\s*(?:(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<str>'(?:[^']|'')*')"
    r"|(?P<op><=|>=|!=|<>|=|<|>)"
    r"|(?P<punct>[(),])"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    if len(text) > MAX_FILTER_CHARS:
        raise InvalidQueryError(f"filter: longer than {MAX_FILTER_CHARS} characters")
    tokens, pos = [], 0
    while pos < len(text):
        pos += len(text[pos:]) - len(text[pos:].lstrip())
        if pos == len(text):
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:
            raise InvalidQueryError(
                f"filter: unexpected character at position {pos}: {text[pos : pos + 10]!r}"
            )
        start = match.start(match.lastgroup)
        tokens.append(_Token(match.lastgroup, match.group(match.lastgroup), start))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text.upper() == word:
            self.i += 1
            return True
        return False

    def expect(self, kind: str, text: str | None = None) -> _Token:
        token = self.peek()
        if token is None or token.kind != kind or (text is not None and token.text != text):
            wanted = text or kind
            where = "the end" if token is None else f"{token.text!r} at position {token.pos}"
            raise InvalidQueryError(f"filter: expected {wanted}, found {where}")
        self.i += 1
        return token

    def expr(self) -> Filter:
        items = [self.conj()]
        while self.keyword("OR"):
            items.append(self.conj())
        return items[0] if len(items) == 1 else BoolExpr(kind="or", items=tuple(items))

    def conj(self) -> Filter:
        items = [self.atom()]
        while self.keyword("AND"):
            items.append(self.atom())
        return items[0] if len(items) == 1 else BoolExpr(kind="and", items=tuple(items))

    def atom(self) -> Filter:
        token = self.peek()
        if token is not None and token.kind == "punct" and token.text == "(":
            self.i += 1
            self.depth += 1
            if self.depth > MAX_FILTER_DEPTH:
                raise InvalidQueryError(f"filter: parentheses nest deeper than {MAX_FILTER_DEPTH}")
            inner = self.expr()
            self.expect("punct", ")")
            self.depth -= 1
            return inner
        column = self.expect("word").text
        if column.upper() in ("AND", "OR", "NOT", "IN"):
            raise InvalidQueryError(f"filter: expected a column name, found {column!r}")
        negate = self.keyword("NOT")
        if negate or self.keyword("IN"):
            if negate and not self.keyword("IN"):
                raise InvalidQueryError("filter: NOT may only appear as NOT IN")
            return InList(column=column, values=self.literal_list(), negate=negate)
        op = self.expect("op").text
        return Comparison.model_validate(
            {"column": column, "op": "!=" if op == "<>" else op, "value": self.literal()}
        )

    def literal_list(self) -> tuple[str, ...]:
        self.expect("punct", "(")
        values = [self.literal()]
        while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
            self.i += 1
            values.append(self.literal())
        self.expect("punct", ")")
        return tuple(values)

    def literal(self) -> str:
        token = self.peek()
        if token is None or token.kind not in ("num", "str"):
            where = "the end" if token is None else f"{token.text!r} at position {token.pos}"
            raise InvalidQueryError(f"filter: expected a number or 'text', found {where}")
        self.i += 1
        return token.text[1:-1].replace("''", "'") if token.kind == "str" else token.text


def parse_where(text: str) -> Filter | None:
    """The filter tree for ``text``; None for an empty filter."""
    if not text.strip():
        return None
    parser = _Parser(text)
    try:
        tree = parser.expr()
    except ValidationError as err:  # a column name or literal out of bounds: say which
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidQueryError(f"filter: {where}: {first['msg']}") from None
    rest = parser.peek()
    if rest is not None:
        raise InvalidQueryError(f"filter: unexpected {rest.text!r} at position {rest.pos}")
    return tree
