"""Signed tree heads as C2SP checkpoints, and witness cosignatures.

Formats (c2sp.org/tlog-checkpoint, c2sp.org/tlog-cosignature), carried in the
signed notes of :mod:`.signed_note` (c2sp.org/signed-note), so that existing
witness and monitor tooling can check this log:

* a **checkpoint** is a note whose text is ``<origin>\\n<size>\\n<base64 root>\\n``,
  optionally followed by non-empty extension lines, signed by the log with an
  Ed25519 note signature;
* an Ed25519 **cosignature** (a witness's) signs
  ``"cosignature/v1\\ntime <ts>\\n" || checkpoint text``, where ``<ts>`` is a POSIX
  time in *seconds*; its signature bytes are ``timestamp (8 bytes, big-endian) ||
  signature`` and its key id is ``SHA-256(name || 0x0A || 0x04 || public key)[:4]``.

Our one extension line is ``time-ms <unix milliseconds>``: the moment the log
signed the head, covered by the log's signature and by every cosignature. It
is named ``time-ms`` rather than ``time`` so it cannot be mistaken for the
cosignature's ``time`` line, which counts seconds.

The signed-note functions are imported here too, so this module is the one to
import from. Every failure raises :class:`~mpc_gateway.errors.IntegrityError`
whose message says what was wrong. Keys are ``cryptography`` Ed25519 keys passed
in by the caller.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mpc_gateway.audit.merkle import HASH_SIZE
from mpc_gateway.audit.signed_note import (
    ED25519_TYPE,
    EM_DASH_PREFIX,
    MAX_SIGNATURES,
    NoteSignature,
    append_signature,
    check_key_name,
    key_id,
    parse_note,
    sign_note,
    verify_note,
)
from mpc_gateway.audit.signed_note import decode_base64 as _b64decode
from mpc_gateway.audit.signed_note import decode_text as _decode
from mpc_gateway.audit.signed_note import format_signature_line as _signature_line
from mpc_gateway.audit.signed_note import signatures_by as _matching
from mpc_gateway.errors import IntegrityError

__all__ = [
    "COSIGNATURE_TYPE",
    "ED25519_TYPE",
    "EM_DASH_PREFIX",
    "MAX_SIGNATURES",
    "Checkpoint",
    "NoteSignature",
    "append_signature",
    "check_key_name",
    "cosign",
    "cosignature_key_id",
    "format_checkpoint",
    "key_id",
    "parse_checkpoint",
    "parse_note",
    "sign_checkpoint",
    "sign_note",
    "verify_checkpoint",
    "verify_cosignature",
    "verify_note",
    "verify_witnessed_checkpoint",
]

COSIGNATURE_TYPE = 0x04
TIME_MS_PREFIX = "time-ms "
_ED25519_SIG_SIZE = 64
_MAX_COSIGNATURE_TIME = 2**63 - 1
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class Checkpoint:
    """The parsed text of a checkpoint: a log's tree head at one size."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_checkpoint_fields(self.origin, self.size, self.root_hash, self.extensions)

    @property
    def timestamp_ms(self) -> int | None:
        """When the log signed this head (our ``time-ms`` extension), if present."""
        for line in self.extensions:
            if line.startswith(TIME_MS_PREFIX):
                return int(line[len(TIME_MS_PREFIX) :])
        return None

    def body(self) -> bytes:
        """The exact note text this checkpoint was parsed from."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode()]
        return ("\n".join([*lines, *self.extensions]) + "\n").encode()


# --- checkpoint text -------------------------------------------------------------


def _check_checkpoint_fields(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...]
) -> None:
    if not origin or any(ord(c) < 0x20 for c in origin):
        raise IntegrityError(f"checkpoint origin {origin!r} must be one non-empty line")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise IntegrityError(f"checkpoint size {size!r} must be a non-negative integer")
    if not isinstance(root, bytes) or len(root) != HASH_SIZE:
        raise IntegrityError(f"checkpoint root hash must be {HASH_SIZE} bytes")
    for line in extensions:
        if not line or any(ord(c) < 0x20 for c in line):
            raise IntegrityError(f"checkpoint extension line {line!r} must be one non-empty line")
    stamps = [line for line in extensions if line.startswith(TIME_MS_PREFIX)]
    if len(stamps) > 1:
        raise IntegrityError("checkpoint has more than one time-ms line")
    if stamps and not _DECIMAL.fullmatch(stamps[0][len(TIME_MS_PREFIX) :]):
        raise IntegrityError(f"checkpoint line {stamps[0]!r} is not 'time-ms <decimal>'")


def format_checkpoint(
    origin: str,
    size: int,
    root: bytes,
    *,
    timestamp_ms: int | None = None,
    extensions: tuple[str, ...] = (),
) -> bytes:
    """The checkpoint text ``<origin>\\n<size>\\n<base64 root>\\n`` plus extension lines."""
    if timestamp_ms is not None:
        if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int) or timestamp_ms < 0:
            raise IntegrityError(f"timestamp {timestamp_ms!r} must be non-negative milliseconds")
        extensions = (f"{TIME_MS_PREFIX}{timestamp_ms}", *extensions)
    return Checkpoint(origin, size, root, tuple(extensions)).body()


def parse_checkpoint(body: bytes) -> Checkpoint:
    """Parse checkpoint text (no signature check: use :func:`verify_checkpoint` for that)."""
    text = _decode(body, "checkpoint")
    if not text.endswith("\n"):
        raise IntegrityError("checkpoint text does not end in a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise IntegrityError(
            f"checkpoint text has {len(lines)} line(s); it needs origin, size and root hash"
        )
    origin, size_text, root_text, *extensions = lines
    if not _DECIMAL.fullmatch(size_text):
        raise IntegrityError(f"checkpoint size {size_text!r} is not a decimal without leading 0s")
    root = _b64decode(root_text, "checkpoint root hash")
    if len(root) != HASH_SIZE:
        raise IntegrityError(f"checkpoint root hash has {len(root)} bytes, not {HASH_SIZE}")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


# --- checkpoints -----------------------------------------------------------------


def sign_checkpoint(body: bytes, key_name: str, private_key: Ed25519PrivateKey) -> str:
    """Sign checkpoint text (from :func:`format_checkpoint`); return the checkpoint note."""
    parse_checkpoint(body)
    return sign_note(body, key_name, private_key)


def verify_checkpoint(
    note: str | bytes,
    key_name: str,
    public_key: Ed25519PublicKey,
    *,
    origin: str | None = None,
) -> Checkpoint:
    """Verify the log's signature on a checkpoint note and parse it.

    Signatures by other keys (witnesses, a rotated key) are ignored, as the
    signed-note spec requires. With ``origin``, the checkpoint must name it.
    """
    checkpoint = parse_checkpoint(verify_note(note, key_name, public_key))
    if origin is not None and checkpoint.origin != origin:
        raise IntegrityError(
            f"checkpoint is for log {checkpoint.origin!r}, not the expected {origin!r}"
        )
    return checkpoint


# --- witness cosignatures ---------------------------------------------------------


def cosignature_key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """Key id of an Ed25519 cosignature (signature type 0x04)."""
    return key_id(name, public_key, COSIGNATURE_TYPE)


def _cosigned_message(body: bytes, timestamp: int) -> bytes:
    return b"cosignature/v1\ntime %d\n" % timestamp + body


def cosign(body: bytes, timestamp: int, name: str, private_key: Ed25519PrivateKey) -> str:
    """A witness's cosignature line over checkpoint text, at POSIX time ``timestamp`` (seconds).

    Cosign only after checking a consistency proof from the last checkpoint you
    cosigned: a cosignature states that this is the largest consistent tree
    head the witness has seen for the origin.
    """
    parse_checkpoint(body)
    check_key_name(name)
    if isinstance(timestamp, bool) or not 0 <= timestamp <= _MAX_COSIGNATURE_TIME:
        raise IntegrityError(f"cosignature time {timestamp!r} must be 0..2^63-1 seconds")
    signature = private_key.sign(_cosigned_message(body, timestamp))
    kid = cosignature_key_id(name, private_key.public_key())
    return _signature_line(name, kid, timestamp.to_bytes(8, "big") + signature)


def verify_cosignature(
    note: str | bytes,
    name: str,
    public_key: Ed25519PublicKey,
    *,
    not_after: int | None = None,
) -> int:
    """Verify ``name``'s cosignature on a checkpoint note; return its time (POSIX seconds).

    ``not_after`` (seconds) rejects cosignatures dated later, e.g. in the future.
    """
    body, signatures = parse_note(note)
    parse_checkpoint(body)
    timestamp = _cosigned_at(body, signatures, name, public_key)
    if not_after is not None and timestamp > not_after:
        raise IntegrityError(f"the cosignature by {name!r} is dated {timestamp}, after {not_after}")
    return timestamp


def _cosigned_at(
    body: bytes, signatures: list[NoteSignature], name: str, public_key: Ed25519PublicKey
) -> int:
    """The latest time of ``name``'s cosignatures among a parsed note's; each must verify."""
    kid = cosignature_key_id(name, public_key)
    return max(
        _verify_one_cosignature(s, body, public_key) for s in _matching(signatures, name, kid)
    )


def _verify_one_cosignature(
    signature: NoteSignature, body: bytes, public_key: Ed25519PublicKey
) -> int:
    if len(signature.signature) != 8 + _ED25519_SIG_SIZE:
        raise IntegrityError(
            f"the cosignature by {signature.name!r} has {len(signature.signature)} bytes "
            f"after its key id, not 8 (time) + {_ED25519_SIG_SIZE} (signature)"
        )
    timestamp = int.from_bytes(signature.signature[:8], "big")
    if timestamp > _MAX_COSIGNATURE_TIME:
        raise IntegrityError(f"the cosignature by {signature.name!r} has a time above 2^63-1")
    try:
        public_key.verify(signature.signature[8:], _cosigned_message(body, timestamp))
    except InvalidSignature as err:
        raise IntegrityError(
            f"the cosignature by {signature.name!r} does not verify over this checkpoint"
        ) from err
    return timestamp


def verify_witnessed_checkpoint(
    note: str | bytes,
    key_name: str,
    public_key: Ed25519PublicKey,
    witnesses: Mapping[str, Ed25519PublicKey],
    quorum: int,
) -> tuple[Checkpoint, dict[str, int]]:
    """Require the log's signature and valid cosignatures from ``quorum`` of ``witnesses``.

    Returns the checkpoint and the cosignature time of each witness that signed.
    A witness whose cosignature is present but invalid fails the whole note.
    """
    if not 0 < quorum <= len(witnesses):
        raise IntegrityError(f"quorum {quorum} must be between 1 and {len(witnesses)} witnesses")
    checkpoint = verify_checkpoint(note, key_name, public_key)
    body, signatures = parse_note(note)
    present = {(s.name, s.key_id) for s in signatures}
    times = {
        name: _cosigned_at(body, signatures, name, key)
        for name, key in witnesses.items()
        if (name, cosignature_key_id(name, key)) in present
    }
    if len(times) < quorum:
        raise IntegrityError(
            f"checkpoint at size {checkpoint.size} has {len(times)} witness cosignature(s), "
            f"fewer than the quorum of {quorum}"
        )
    return checkpoint, times
