"""C2SP signed notes (c2sp.org/signed-note): text, a blank line, then signature lines.

The envelope in which :mod:`.checkpoint` carries checkpoints and cosignatures:

* a **note** is UTF-8 text ending in a newline, a blank line, then one or more
  lines ``— <key name> <base64(4-byte key id || signature)>`` (U+2014, a space);
* an Ed25519 **note signature** signs the text; its key id is
  ``SHA-256(name || 0x0A || 0x01 || 32-byte public key)[:4]``; other signature
  types (a cosignature's is 0x04) differ only in that type byte.

Every failure raises :class:`~mpc_gateway.errors.IntegrityError` whose message
says what was wrong. Keys are ``cryptography`` Ed25519 keys passed in by the caller.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mpc_gateway.errors import IntegrityError

__all__ = [
    "ED25519_TYPE",
    "EM_DASH_PREFIX",
    "MAX_SIGNATURES",
    "NoteSignature",
    "append_signature",
    "check_key_name",
    "decode_base64",
    "decode_text",
    "format_signature_line",
    "key_id",
    "parse_note",
    "sign_note",
    "signatures_by",
    "verify_note",
]

ED25519_TYPE = 0x01
EM_DASH_PREFIX = "\u2014 "
# signed-note: verifiers must accept at least 16 signatures and should cap them.
MAX_SIGNATURES = 100


class NoteSignature(NamedTuple):
    """One signature line of a note: ``(name, key_id, signature)``."""

    name: str
    key_id: bytes
    signature: bytes


_NOT_IN_KEY_NAME = re.compile(r"[\s+\x00-\x1f]")  # whitespace (Unicode's too), '+', controls


def check_key_name(name: str) -> str:
    """Return ``name`` if it is a valid note key name (non-empty, no spaces, no ``+``)."""
    if not name or _NOT_IN_KEY_NAME.search(name):
        raise IntegrityError(f"key name {name!r} must be non-empty, without spaces or '+'")
    return name


def _raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, public_key: Ed25519PublicKey, signature_type: int = ED25519_TYPE) -> bytes:
    """``SHA-256(name || 0x0A || type || public key)[:4]``, the signed-note key id."""
    material = name.encode() + b"\n" + bytes([signature_type]) + _raw_public_key(public_key)
    return hashlib.sha256(material).digest()[:4]


_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")


def decode_text(data: bytes | str, what: str) -> str:
    """``data`` as text: UTF-8 without control characters but newline (``what`` for errors)."""
    if isinstance(data, str):
        text = data
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise IntegrityError(f"{what} is not valid UTF-8") from err
    if _CONTROL.search(text):
        raise IntegrityError(f"{what} contains a control character other than newline")
    return text


def decode_base64(text: str, what: str) -> bytes:
    """``text`` decoded as strict base64 (``what`` names it in errors)."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise IntegrityError(f"{what} is not valid base64") from err


def _parse_signature_line(line: str, number: int) -> NoteSignature:
    if not line.startswith(EM_DASH_PREFIX):
        raise IntegrityError(f"signature line {number} does not start with an em dash and a space")
    name, _, encoded = line[len(EM_DASH_PREFIX) :].partition(" ")
    check_key_name(name)
    raw = decode_base64(encoded, f"signature line {number}")
    if len(raw) < 5:
        raise IntegrityError(f"signature line {number} is too short to hold a key id and signature")
    return NoteSignature(name, raw[:4], raw[4:])


def parse_note(note: str | bytes) -> tuple[bytes, list[NoteSignature]]:
    """Split a signed note into its text and its signature lines (nothing is verified)."""
    text = decode_text(note, "note")
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


def format_signature_line(name: str, key: bytes, signature: bytes) -> str:
    """One signature line: ``— <name> <base64(key id || signature)>`` and a newline."""
    return f"{EM_DASH_PREFIX}{name} {base64.b64encode(key + signature).decode()}\n"


def sign_note(text: bytes | str, key_name: str, private_key: Ed25519PrivateKey) -> str:
    """Sign ``text`` with an Ed25519 note signature; return the whole note."""
    body = decode_text(text, "note text")
    if not body.endswith("\n"):
        raise IntegrityError("note text must end in a newline")
    check_key_name(key_name)
    signature = private_key.sign(body.encode())
    kid = key_id(key_name, private_key.public_key())
    return body + "\n" + format_signature_line(key_name, kid, signature)


def append_signature(note: str, signature_line: str) -> str:
    """Add a signature line (e.g. from :func:`.checkpoint.cosign`) to a signed note."""
    parse_note(note)
    if not signature_line.endswith("\n") or "\n" in signature_line[:-1]:
        raise IntegrityError("a signature line is one line ending in a newline")
    _parse_signature_line(signature_line[:-1], 1)
    return note + signature_line


def signatures_by(signatures: list[NoteSignature], name: str, kid: bytes) -> list[NoteSignature]:
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
    for signature in signatures_by(signatures, key_name, kid):
        try:
            public_key.verify(signature.signature, body)
        except InvalidSignature as err:
            raise IntegrityError(
                f"the signature by {key_name!r} (key id {kid.hex()}) does not verify: "
                "the note text was altered or the signature forged"
            ) from err
    return body
