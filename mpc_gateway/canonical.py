"""One canonical byte encoding for everything that is hashed or signed.

JSON with sorted keys, no insignificant whitespace and UTF-8 output, over
strings, integers, booleans, nulls, lists and objects only. Floats are refused:
their text form is not canonical across implementations, so exact quantities are
carried as integers or decimal strings instead.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["canonical_bytes", "canonical_hash", "digest_if_long", "from_canonical"]


def _fine(value: Any) -> bool:
    """Whether ``value`` has a canonical encoding (fast: no paths built, no recursion)."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is dict:
            if not all(type(key) is str for key in item) and not all(
                isinstance(key, str) for key in item
            ):
                return False
            pending.extend(item.values())
        elif kind is list or kind is tuple:
            pending.extend(item)
        elif isinstance(item, bool | int | str):  # a subclass: an enum member, say
            continue
        elif isinstance(item, list | tuple | dict):
            pending.append(dict(item) if isinstance(item, dict) else list(item))
        else:
            return False
    return True


def _check(value: Any, path: str = "$") -> None:
    """Raise TypeError naming where ``value`` has no canonical encoding."""
    if _fine(value):
        return
    if isinstance(value, float):
        raise TypeError(
            f"float at {path} has no canonical encoding; use an int or a decimal string"
        )
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"non-string key at {path}")
            _check(item, f"{path}.{key}")
        return
    raise TypeError(f"{type(value).__name__} at {path} has no canonical encoding")


def canonical_bytes(value: Any) -> bytes:
    """The canonical encoding of ``value``; equal values give equal bytes."""
    _check(value)
    return _encode(value)


def _encode(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def canonical_hash(value: Any) -> str:
    """Hex SHA-256 of :func:`canonical_bytes`."""
    return hashlib.sha256(canonical_bytes(value)).hexdigest()


def _no_float(text: str) -> Any:
    raise ValueError(f"{text[:20]} has no canonical encoding: canonical bytes carry no floats")


def from_canonical(data: bytes) -> Any:
    """Decode canonical bytes, refusing anything that would not re-encode identically."""
    # JSON gives only strings, integers, booleans, nulls, lists and string-keyed objects,
    # and floats are refused as they are read: what is left needs no check before encoding
    value = json.loads(data.decode("utf-8"), parse_float=_no_float, parse_constant=_no_float)
    if _encode(value) != data:
        raise ValueError("bytes are not in canonical form")
    return value


def digest_if_long(value: Any, limit: int) -> Any:
    """``value`` itself, or ``{"sha256": ..., "length": ...}`` when it is longer than ``limit``.

    A string is measured in characters and hashed as UTF-8; anything else in bytes of
    its canonical encoding. What an audit log records of untrusted input: long text
    becomes a fixed-size digest that still identifies exactly what was sent.
    """
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) <= limit:
            return value
        data = value.encode("utf-8", "surrogatepass")
        return {"sha256": hashlib.sha256(data).hexdigest(), "length": len(value)}
    data = canonical_bytes(value)
    if len(data) <= limit:
        return value
    return {"sha256": hashlib.sha256(data).hexdigest(), "length": len(data)}
