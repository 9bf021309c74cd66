"""Client text that cannot travel: strings with no UTF-8 encoding, refused in words.

Python strings may hold lone surrogates (bytes decoded with ``surrogateescape``, a
file name read on a system with another encoding), which protobuf and hashing
cannot encode: without these checks the caller would get a bare UnicodeEncodeError.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mpc_gateway.errors import InvalidRequestError

__all__ = ["unicode_checked", "unicode_text"]


@contextmanager
def unicode_checked(what: str) -> Iterator[None]:
    """Text in the block that has no UTF-8 encoding is an InvalidRequestError naming ``what``."""
    try:
        yield
    except UnicodeEncodeError as err:
        near = ascii(err.object[max(err.start - 20, 0) : err.start + 20])
        raise InvalidRequestError(
            f"{what} is not valid Unicode text: a lone surrogate at position {err.start}, "
            f"in {near} (was it read from bytes that are not UTF-8?)"
        ) from None


def unicode_text(text: str, what: str) -> str:
    """``text`` if it can be encoded as UTF-8; an InvalidRequestError naming ``what`` if not."""
    with unicode_checked(what):
        text.encode()
    return text
