"""Signed tree heads as C2SP checkpoints, and witness cosignatures.

Formats (c2sp.org/signed-note, c2sp.org/tlog-checkpoint, c2sp.org/tlog-cosignature),
so that existing witness and monitor tooling can check this log:

* a **note** is UTF-8 text ending in a newline, a blank line, then one or more
  lines ``— <key name> <base64(4-byte key id || signature)>`` (U+2014, a space);
* a **checkpoint** is a note whose text is ``<origin>\\n<size>\\n<base64 root>\\n``,
  optionally followed by non-empty extension lines;
* an Ed25519 **note signature** signs the text; its key id is
  ``SHA-256(name || 0x0A || 0x01 || 32-byte public key)[:4]``;
* an Ed25519 **cosignature** (a witness's) signs
  ``"cosignature/v1\\ntime <ts>\\n" || checkpoint text``, where ``<ts>`` is a POSIX
  time in *seconds*; its signature bytes are ``timestamp (8 bytes, big-endian) ||
  signature`` and its key id is ``SHA-256(name || 0x0A || 0x04 || public key)[:4]``.

Our one extension line is ``time-ms <unix milliseconds>``: the moment the log
signed the head, covered by the log's signature and by every cosignature. It
is named ``time-ms`` rather than ``time`` so it cannot be mistaken for the
cosignature's ``time`` line, which counts seconds.

Every failure raises :class:`~mpc_gateway.errors.IntegrityError` whose message
says what was wrong. Keys are ``cryptography`` Ed25519 keys passed in by the caller.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mpc_gateway.audit.merkle import HASH_SIZE
from mpc_gateway.errors import IntegrityError

__all__ = [
    "COSIGNATURE_TYPE",
    "ED25519_TYPE",
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

ED25519_TYPE = 0x01
COSIGNATURE_TYPE = 0x04
EM_DASH_PREFIX = "\u2014 "
TIME_MS_PREFIX = "time-ms "
# signed-note: verifiers must accept at least 16 signatures and should cap them.
MAX_SIGNATURES = 100
_ED25519_SIG_SIZE = 64
_MAX_COSIGNATURE_TIME = 2**63 - 1
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


class NoteSignature(NamedTuple):
    """One signature line of a note: ``(name, key_id, signature)``."""

    name: str
    key_id: bytes
    signature: bytes


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


def check_key_name(name: str) -> str:
    """Return ``name`` if it is a valid note key name (non-empty, no spaces, no ``+``)."""
    if not name or "+" in name or any(c.isspace() or ord(c) < 0x20 for c in name):
        raise IntegrityError(f"key name {name!r} must be non-empty, without spaces or '+'")
    return name


def _raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, public_key: Ed25519PublicKey, signature_type: int = ED25519_TYPE) -> bytes:
    """``SHA-256(name || 0x0A || type || public key)[:4]``, the signed-note key id."""
    material = name.encode() + b"\n" + bytes([signature_type]) + _raw_public_key(public_key)
    return hashlib.sha256(material).digest()[:4]


def cosignature_key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """Key id of an Ed25519 cosignature (signature type 0x04)."""
    return key_id(name, public_key, COSIGNATURE_TYPE)


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


# --- notes -----------------------------------------------------------------------


def _decode(data: bytes | str, what: str) -> str:
    if isinstance(data, str):
        text = data
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise IntegrityError(f"{what} is not valid UTF-8") from err
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise IntegrityError(f"{what} contains a control character other than newline")
    return text


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise IntegrityError(f"{what} is not valid base64") from err


def _parse_signature_line(line: str, number: int) -> NoteSignature:
    if not line.startswith(EM_DASH_PREFIX):
        raise IntegrityError(f"signature line {number} does not start with an em dash and a space")
    name, _, encoded = line[len(EM_DASH_PREFIX) :].partition(" ")
    check_key_name(name)
    raw = _b64decode(encoded, f"signature line {number}")
    if len(raw) < 5:
        raise IntegrityError(f"signature line {number} is too short to hold a key id and signature")
    return NoteSignature(name, raw[:4], raw[4:])


def parse_note(note: str | bytes) -> tuple[bytes, list[NoteSignature]]:
    """Split a signed note into its text and its signature lines (nothing is verified)."""
    text = _decode(note, "note")
    split = text.rfind("\n\n")
    if split < 0:
        raise IntegrityError("note has no blank line between its text and its signatures")
    body, block = text[: split + 1], text[split + 2 :]
    if not block:
        raise IntegrityError("note has no signature lines")
    if not block.endswith("\n"):
        raise IntegrityError("note's last signature line does not end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise IntegrityError(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    signatures = [_parse_signature_line(line, i) for i, line in enumerate(lines, start=1)]
    return body.encode(), signatures


def _signature_line(name: str, key: bytes, signature: bytes) -> str:
    return f"{EM_DASH_PREFIX}{name} {base64.b64encode(key + signature).decode()}\n"


def sign_note(text: bytes | str, key_name: str, private_key: Ed25519PrivateKey) -> str:
    """Sign ``text`` with an Ed25519 note signature; return the whole note."""
    body = _decode(text, "note text")
    if not body.endswith("\n"):
        raise IntegrityError("note text must end in a newline")
    check_key_name(key_name)
    signature = private_key.sign(body.encode())
    kid = key_id(key_name, private_key.public_key())
    return body + "\n" + _signature_line(key_name, kid, signature)


def append_signature(note: str, signature_line: str) -> str:
    """Add a signature line (e.g. a cosignature from :func:`cosign`) to a signed note."""
    parse_note(note)
    if not signature_line.endswith("\n") or "\n" in signature_line[:-1]:
        raise IntegrityError("a signature line is one line ending in a newline")
    _parse_signature_line(signature_line[:-1], 1)
    return note + signature_line


def _matching(signatures: list[NoteSignature], name: str, kid: bytes) -> list[NoteSignature]:
    """Signatures by (name, key id); explain precisely when there are none."""
    matching = [s for s in signatures if s.name == name and s.key_id == kid]
    if matching:
        return matching
    other_ids = sorted({s.key_id.hex() for s in signatures if s.name == name})
    if other_ids:
        raise IntegrityError(
            f"the signature by {name!r} has key id {', '.join(other_ids)}, expected {kid.hex()}: "
            "it was made with a different key or signature type"
        )
    present = ", ".join(sorted({repr(s.name) for s in signatures}))
    raise IntegrityError(f"note is not signed by {name!r} (it is signed by {present})")


def verify_note(note: str | bytes, key_name: str, public_key: Ed25519PublicKey) -> bytes:
    """Check the Ed25519 signature(s) by ``key_name``; return the note text they cover."""
    body, signatures = parse_note(note)
    kid = key_id(key_name, public_key)
    for signature in _matching(signatures, key_name, kid):
        try:
            public_key.verify(signature.signature, body)
        except InvalidSignature as err:
            raise IntegrityError(
                f"the signature by {key_name!r} (key id {kid.hex()}) does not verify: "
                "the note text was altered or the signature forged"
            ) from err
    return body


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
    kid = cosignature_key_id(name, public_key)
    times = [_verify_one_cosignature(s, body, public_key) for s in _matching(signatures, name, kid)]
    timestamp = max(times)
    if not_after is not None and timestamp > not_after:
        raise IntegrityError(f"the cosignature by {name!r} is dated {timestamp}, after {not_after}")
    return timestamp


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
    _, signatures = parse_note(note)
    present = {(s.name, s.key_id) for s in signatures}
    times = {
        name: verify_cosignature(note, name, key)
        for name, key in witnesses.items()
        if (name, cosignature_key_id(name, key)) in present
    }
    if len(times) < quorum:
        raise IntegrityError(
            f"checkpoint at size {checkpoint.size} has {len(times)} witness cosignature(s), "
            f"fewer than the quorum of {quorum}"
        )
    return checkpoint, times
