"""Keyed pseudonyms for persons: HMAC-SHA256(consortium secret, national id).

Companies are matched across institutions by their LEI, which is public. Persons
are matched by a pseudonym every node computes the same way from the person's
national identifier and a 32-byte secret shared by the nodes only. Without the
key, a pseudonym cannot be recomputed from a guessed identifier (national ids
are few enough to enumerate, so an unkeyed hash would not protect them).

Who holds the key: every node, and nobody else. It is created once
(:func:`create_key_file`), handed to each institution out of band (never through
the gateway), and kept next to the node's data with mode 0600. The gateway
never receives the key file nor any national identifier; it only ever sees
pseudonyms, and only in a batch of entity keys it forwards. A node converts
its data before loading it (:func:`pseudonymise_frame`); the key column then
holds pseudonyms and is declared ``kind = "key"`` in the schema.

Rotating the key re-keys every pseudonym at once; all nodes must switch
together.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from mpc_gateway.errors import ConfigurationError, InvalidRequestError

__all__ = [
    "KEY_BYTES",
    "create_key_file",
    "load_key",
    "normalise_national_id",
    "pseudonymise",
    "pseudonymise_many",
    "pseudonymise_frame",
]

KEY_BYTES = 32
_DOMAIN = b"mpc-gateway person pseudonym v1\x00"
_SEPARATORS = str.maketrans("", "", " \t-./")


def create_key_file(path: Path) -> None:
    """Write a fresh random 32-byte key to ``path`` (mode 0600); refuse to overwrite."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigurationError(f"{path} exists: a pseudonym key is never overwritten") from None
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_bytes(KEY_BYTES))


def load_key(path: Path) -> bytes:
    """Read the pseudonym key; refuse a file of the wrong size or readable by others."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as err:
        raise ConfigurationError(f"pseudonym key {path} cannot be read: {err.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(f"pseudonym key {path} is accessible to others: chmod 600 it")
    if len(data) != KEY_BYTES:
        raise ConfigurationError(f"pseudonym key {path} must hold exactly {KEY_BYTES} bytes")
    return data


def normalise_national_id(text: str) -> str:
    """One spelling per identifier: NFKC, no spaces, dashes, dots or slashes, upper case."""
    normal = unicodedata.normalize("NFKC", text).translate(_SEPARATORS).upper()
    if not normal:
        raise InvalidRequestError("an empty national identifier has no pseudonym")
    return normal


def pseudonymise(key: bytes, national_id: str) -> str:
    """The person's pseudonym: hex HMAC-SHA256 of the normalised identifier."""
    if len(key) != KEY_BYTES:
        raise InvalidRequestError(f"the pseudonym key must be {KEY_BYTES} bytes")
    message = _DOMAIN + normalise_national_id(national_id).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def pseudonymise_many(key: bytes, national_ids: Iterable[str]) -> list[str]:
    return [pseudonymise(key, value) for value in national_ids]


def pseudonymise_frame(
    frame: pd.DataFrame, key: bytes, source: str = "national_id", target: str = "person_key"
) -> pd.DataFrame:
    """A copy of ``frame`` with ``source`` replaced by its pseudonyms in ``target``."""
    out = frame.drop(columns=[source])
    out[target] = pseudonymise_many(key, frame[source].astype(str))
    return out
