"""C2SP signed notes, checkpoints and cosignatures, against published vectors.

Vectors, copied verbatim:

* golang.org/x/mod ``sumdb/note/note_test.go`` @ 02c991387e35f9e4c0a9b7ce137717055f8d716d
  (``TestSign``, ``TestOpen``): the PeterNeumann key and its signed note;
* transparency-dev/formats ``note/note_cosigv1_test.go`` @
  091ce41666c09683aa9350785e572be27f0c026d: the ``remora.n621.de`` cosignature
  verifier key (type 0x04) and the ``TEST`` Ed25519 key (type 0x01) with their key ids;
* c2sp.org/tlog-cosignature (C2SP/C2SP ``tlog-cosignature.md``): the example
  checkpoint with a log signature and a witness cosignature dated ``1679315147``.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mpc_gateway.audit.checkpoint import (
    Checkpoint,
    append_signature,
    cosign,
    cosignature_key_id,
    format_checkpoint,
    key_id,
    parse_checkpoint,
    parse_note,
    sign_checkpoint,
    sign_note,
    verify_checkpoint,
    verify_cosignature,
    verify_note,
    verify_witnessed_checkpoint,
)
from mpc_gateway.audit.merkle import leaf_hash
from mpc_gateway.errors import IntegrityError
from tests.audit.helpers import fixed_key

# golang.org/x/mod sumdb/note/note_test.go
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqd"
    "ngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWL"
    "ox33WWd1RvMc+QQ=\n"
)
# transparency-dev/formats note/note_cosigv1_test.go (TestCoSigV1NewVerifier)
REMORA_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
TEST_VKEY = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
# c2sp.org/tlog-cosignature, the example checkpoint
C2SP_EXAMPLE = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5"
    "/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlr"
    "DJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)

ORIGIN = "log.example/audit"
ROOT = leaf_hash(b"root")


def vkey_public(vkey: str) -> tuple[str, int, Ed25519PublicKey]:
    """Split a Go note verifier key ``name+hexid+base64(type || key)``."""
    name, _, material = vkey.split("+", 2)  # the base64 part may itself hold '+'
    raw = base64.b64decode(material)
    return name, raw[0], Ed25519PublicKey.from_public_bytes(raw[1:])


def peter_key() -> Ed25519PrivateKey:
    seed = base64.b64decode(PETER_SKEY.split("+", 4)[-1])
    assert seed[0] == 0x01
    return Ed25519PrivateKey.from_private_bytes(seed[1:])


def test_signing_reproduces_the_go_sumdb_note_vector() -> None:
    assert sign_note(PETER_TEXT, "PeterNeumann", peter_key()) == PETER_TEXT + "\n" + PETER_SIG


def test_verifying_the_go_vector_ignores_signatures_by_unknown_keys() -> None:
    name, _, public = vkey_public(PETER_VKEY)
    note = PETER_TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert verify_note(note, name, public) == PETER_TEXT.encode()


@pytest.mark.parametrize(
    ("vkey", "expected_id"),
    [(PETER_VKEY, "c74f20a3"), (TEST_VKEY, "7997405c"), (REMORA_VKEY, "da77ade7")],
)
def test_key_ids_match_published_verifier_keys(vkey: str, expected_id: str) -> None:
    name, signature_type, public = vkey_public(vkey)
    assert key_id(name, public, signature_type).hex() == expected_id
    if signature_type == 0x04:
        assert cosignature_key_id(name, public).hex() == expected_id


def test_the_c2sp_example_parses_with_the_cosignature_time_of_the_spec() -> None:
    body, signatures = parse_note(C2SP_EXAMPLE)
    checkpoint = parse_checkpoint(body)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert [s.name for s in signatures] == ["example.com/behind-the-sofa", "witness.example.com/w1"]
    cosignature = signatures[1].signature
    assert len(cosignature) == 8 + 64
    assert int.from_bytes(cosignature[:8], "big") == 1679315147  # "time 1679315147" in the spec


def test_checkpoint_text_layout() -> None:
    body = format_checkpoint(ORIGIN, 42, ROOT, timestamp_ms=1_750_000_000_123)
    root_b64 = base64.b64encode(ROOT).decode()
    assert body == f"{ORIGIN}\n42\n{root_b64}\ntime-ms 1750000000123\n".encode()
    assert format_checkpoint(ORIGIN, 0, ROOT) == f"{ORIGIN}\n0\n{root_b64}\n".encode()
    parsed = parse_checkpoint(body)
    assert parsed == Checkpoint(ORIGIN, 42, ROOT, ("time-ms 1750000000123",))
    assert parsed.timestamp_ms == 1_750_000_000_123 and parsed.body() == body


def test_signed_checkpoint_verifies_and_names_its_log() -> None:
    key = fixed_key(1)
    note = sign_checkpoint(format_checkpoint(ORIGIN, 3, ROOT), ORIGIN, key)
    body, signatures = parse_note(note)
    assert note.startswith(body.decode() + "\n\u2014 " + ORIGIN + " ")
    assert signatures[0].key_id == key_id(ORIGIN, key.public_key())
    assert len(signatures[0].signature) == 64
    head = verify_checkpoint(note, ORIGIN, key.public_key(), origin=ORIGIN)
    assert (head.size, head.root_hash) == (3, ROOT)


def test_a_different_key_under_the_same_name_is_reported_by_key_id() -> None:
    note = sign_checkpoint(format_checkpoint(ORIGIN, 3, ROOT), ORIGIN, fixed_key(1))
    other = fixed_key(2).public_key()
    expected = key_id(ORIGIN, other).hex()
    with pytest.raises(IntegrityError, match=f"has key id .*, expected {expected}"):
        verify_checkpoint(note, ORIGIN, other)


def test_a_missing_signer_is_named() -> None:
    note = sign_checkpoint(format_checkpoint(ORIGIN, 3, ROOT), ORIGIN, fixed_key(1))
    with pytest.raises(IntegrityError, match="not signed by 'someone.else'.*signed by 'log"):
        verify_checkpoint(note, "someone.else", fixed_key(1).public_key())


def test_altered_text_or_signature_does_not_verify() -> None:
    key = fixed_key(1)
    note = sign_checkpoint(format_checkpoint(ORIGIN, 3, ROOT), ORIGIN, key)
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_checkpoint(note.replace("\n3\n", "\n4\n", 1), ORIGIN, key.public_key())
    body, signatures = parse_note(note)
    forged = bytes(64)
    line = "\u2014 " + ORIGIN + " " + base64.b64encode(signatures[0].key_id + forged).decode()
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_note(body.decode() + "\n" + line + "\n", ORIGIN, key.public_key())


def test_checkpoint_for_another_origin_is_refused() -> None:
    note = sign_checkpoint(format_checkpoint("other.example/log", 1, ROOT), ORIGIN, fixed_key(1))
    with pytest.raises(IntegrityError, match="for log 'other.example/log', not the expected"):
        verify_checkpoint(note, ORIGIN, fixed_key(1).public_key(), origin=ORIGIN)


@pytest.mark.parametrize(
    ("note", "message"),
    [
        (PETER_TEXT + PETER_SIG, "no blank line"),
        (PETER_TEXT + "\n", "no signature lines"),
        (PETER_TEXT + "\n" + PETER_SIG[:-1], "does not end in a newline"),
        ("\x01" + PETER_TEXT + "\n" + PETER_SIG, "control character"),
        (PETER_TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name"), "not valid base64"),
        (PETER_TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "a+b"), "without spaces or '\\+'"),
        (PETER_TEXT + "\n" + PETER_SIG + "Unexpected line.\n", "signature line 2 does not start"),
        (PETER_TEXT + "\n" + PETER_SIG.replace("x08go", "x08g!"), "not valid base64"),
        ((PETER_TEXT + "\n" + PETER_SIG).encode()[:-30] + b"\xff\n", "not valid UTF-8"),
    ],
)
def test_malformed_notes_are_refused_with_the_reason(note: str | bytes, message: str) -> None:
    with pytest.raises(IntegrityError, match=message):
        parse_note(note)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"origin\n5\n", "needs origin, size and root hash"),
        (b"origin\n05\nAAAA\n", "leading 0s"),
        (b"origin\n5\nAAAA\n", "3 bytes, not 32"),
        (b"origin\n5\n" + base64.b64encode(ROOT) + b"\n\n", "non-empty line"),
        (b"origin\n5\n" + base64.b64encode(ROOT), "does not end in a newline"),
        (b"origin\n5\n" + base64.b64encode(ROOT) + b"\ntime-ms soon\n", "time-ms <decimal>"),
    ],
)
def test_malformed_checkpoints_are_refused_with_the_reason(body: bytes, message: str) -> None:
    with pytest.raises(IntegrityError, match=message):
        parse_checkpoint(body)


def test_witness_cosignature_round_trip_and_the_log_signature_still_verifies() -> None:
    log_key, witness = fixed_key(1), fixed_key(3)
    body = format_checkpoint(ORIGIN, 9, ROOT, timestamp_ms=5)
    line = cosign(body, 1_700_000_000, "witness.example/bank-a", witness)
    raw = base64.b64decode(line.split(" ")[-1])
    assert raw[:4] == cosignature_key_id("witness.example/bank-a", witness.public_key())
    assert int.from_bytes(raw[4:12], "big") == 1_700_000_000
    note = append_signature(sign_checkpoint(body, ORIGIN, log_key), line)
    assert verify_cosignature(note, "witness.example/bank-a", witness.public_key()) == 1_700_000_000
    assert verify_checkpoint(note, ORIGIN, log_key.public_key()).size == 9


def test_a_cosignature_is_not_a_plain_note_signature() -> None:
    witness = fixed_key(3)
    body = format_checkpoint(ORIGIN, 9, ROOT)
    note = append_signature(
        sign_checkpoint(body, ORIGIN, fixed_key(1)), cosign(body, 7, "w", witness)
    )
    with pytest.raises(IntegrityError, match="different key or signature type"):
        verify_note(note, "w", witness.public_key())


def test_a_cosignature_moved_to_another_checkpoint_does_not_verify() -> None:
    witness = fixed_key(3)
    line = cosign(format_checkpoint(ORIGIN, 9, ROOT), 7, "w", witness)
    other = sign_checkpoint(format_checkpoint(ORIGIN, 10, ROOT), ORIGIN, fixed_key(1))
    with pytest.raises(IntegrityError, match="cosignature by 'w' does not verify"):
        verify_cosignature(append_signature(other, line), "w", witness.public_key())


def test_cosignature_time_can_be_bounded() -> None:
    body = format_checkpoint(ORIGIN, 9, ROOT)
    note = append_signature(
        sign_checkpoint(body, ORIGIN, fixed_key(1)), cosign(body, 500, "w", fixed_key(3))
    )
    with pytest.raises(IntegrityError, match="dated 500, after 499"):
        verify_cosignature(note, "w", fixed_key(3).public_key(), not_after=499)


def test_a_quorum_of_witnesses_is_required() -> None:
    body = format_checkpoint(ORIGIN, 9, ROOT)
    witnesses = {f"node/{n}": fixed_key(10 + n) for n in range(3)}
    note = sign_checkpoint(body, ORIGIN, fixed_key(1))
    for name in ("node/0", "node/2"):
        note = append_signature(note, cosign(body, 100, name, witnesses[name]))
    public = {name: key.public_key() for name, key in witnesses.items()}
    head, times = verify_witnessed_checkpoint(note, ORIGIN, fixed_key(1).public_key(), public, 2)
    assert head.size == 9 and times == {"node/0": 100, "node/2": 100}
    with pytest.raises(
        IntegrityError, match="2 witness cosignature\\(s\\), fewer than the quorum of 3"
    ):
        verify_witnessed_checkpoint(note, ORIGIN, fixed_key(1).public_key(), public, 3)
