"""The audit log, as an auditor verifies it: intact logs pass, every kind of tampering fails."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from mpc_gateway.audit.evidence import log_origin
from mpc_gateway.audit.log import AuditEvent
from mpc_gateway.audit.merkle import leaf_hash
from mpc_gateway.audit.sqlite import SqliteAuditLog
from mpc_gateway.cli.app import app
from mpc_gateway.devnet.localnet import LocalConsortium
from mpc_gateway.errors import InvalidQueryError
from mpc_gateway.pki import Identity, load_layout, load_signing_key
from mpc_gateway.proto.v1 import node_pb2
from tests.e2e.conftest import client_for, gateway_stub
from tests.forged import count_plan, forge

pytestmark = pytest.mark.e2e

runner = CliRunner()


@pytest.fixture(scope="module")
def audited(consortium: LocalConsortium) -> LocalConsortium:
    with client_for(consortium) as alice, client_for(consortium, "analyst/bob") as bob:
        alice.query("loans", ["count", "mean:exposure"], group_by="sector", purpose="testing")
        bob.query("loans", ["count"], where="defaulted = 1")
        alice.pseudonyms(["NID-000000001", "NID-000000002"])  # every node evaluates, logged
        with pytest.raises(InvalidQueryError):
            alice.query("loans", ["mean:salary"])
    return consortium


class Outcome:
    """A CLI run with its output unwrapped (rich wraps at the terminal's width)."""

    def __init__(self, args: list[str]) -> None:
        result = runner.invoke(app, args)
        self.exit_code = result.exit_code
        self.output = " ".join(result.output.split())
        self.raw = result.output


def _cli(consortium: LocalConsortium, *args: str, identity: str = "auditor/audrey") -> Outcome:
    files = consortium.files
    common = [
        "--gateway",
        files.gateway_address,
        "--pki",
        str(files.pki_dir),
        "--identity",
        identity,
    ]
    return Outcome([*args, *common])


def _node_args(consortium: LocalConsortium) -> list[str]:
    return [f"--node={name}={address}" for name, address in consortium.files.node_addresses.items()]


def test_verify_passes_on_an_intact_consortium(audited: LocalConsortium, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    result = _cli(audited, "audit", "verify", *_node_args(audited), "--state", str(state))
    assert result.exit_code == 0, result.output
    assert "verified" in result.output and "witness log" in result.output
    assert "3 pseudonym evaluations matched to the gateway's requests" in result.output
    assert state.exists()
    again = _cli(audited, "audit", "verify", "--state", str(state))  # consistent with last seen
    assert again.exit_code == 0, again.output
    assert "consistent with the head you last saw" in again.output


def test_every_step_of_a_query_is_recorded(audited: LocalConsortium) -> None:
    result = _cli(audited, "audit", "log", "--json", "--limit", "0")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.raw.splitlines()]
    kinds = {e["kind"] for e in events}
    assert {"query.submitted", "query.dispatched", "result.released", "query.refused"} <= kinds
    released = next(e for e in events if e["kind"] == "result.released")
    assert len(released["details"]["participation"]) == 3
    sealed = released["details"]["sealed"]  # the result only as ciphertext digests, per node
    assert sorted(sealed) == ["bank-a", "bank-b", "broker-c"]
    assert all(len(digest) == 64 for digest in sealed.values())
    submitted = next(e for e in events if e["kind"] == "query.submitted")
    assert len(submitted["details"]["certificate_sha256"]) == 64


def test_analysts_see_only_their_own_queries(audited: LocalConsortium) -> None:
    result = _cli(audited, "audit", "log", "--json", "--limit", "0", identity="analyst/bob")
    assert result.exit_code == 0, result.output
    actors = {json.loads(line)["actor"] for line in result.raw.splitlines()}
    assert actors == {"analyst/bob"}
    denied = _cli(audited, "audit", "verify", identity="analyst/bob")
    assert denied.exit_code == 3 and "needs the role auditor" in denied.output


def test_inclusion_proof_checks_and_a_changed_entry_does_not(
    audited: LocalConsortium, tmp_path: Path
) -> None:
    result = _cli(audited, "audit", "proof", "2")
    assert result.exit_code == 0, result.output
    proof = json.loads(result.raw)
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(proof))
    ok = Outcome(["audit", "check-proof", str(path), "--pki", str(audited.files.pki_dir)])
    assert ok.exit_code == 0, ok.output
    event = AuditEvent.from_entry(base64.b64decode(proof["entry_base64"]))
    forged = event.model_copy(update={"actor": "analyst/mallory"})
    proof["entry_base64"] = base64.b64encode(forged.entry_bytes()).decode()
    path.write_text(json.dumps(proof))
    bad = Outcome(["audit", "check-proof", str(path), "--pki", str(audited.files.pki_dir)])
    assert bad.exit_code == 3 and "not included" in bad.output


def _snapshot(source: Path, target: Path) -> Path:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return target


def _verify_file(consortium: LocalConsortium, db: Path, *extra: str) -> Outcome:
    pki, state = str(consortium.files.pki_dir), str(db.with_suffix(".state"))
    return Outcome(["audit", "verify", "--db", str(db), "--pki", pki, "--state", state, *extra])


def _tamper(db: Path, how: str) -> None:
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT idx, leaf_hash, data FROM entries ORDER BY idx").fetchall()
        if how == "change":
            idx, _, data = next(row for row in rows if b"analyst/alice" in row[2])
            data = data.replace(b"analyst/alice", b"analyst/bobby")
            con.execute(
                "UPDATE entries SET data = ?, leaf_hash = ? WHERE idx = ?",
                (data, leaf_hash(data), idx),
            )
        elif how == "delete":
            con.execute("DELETE FROM entries WHERE idx = 2")
            con.execute("UPDATE entries SET idx = idx - 1 WHERE idx > 2")
        elif how == "reorder":
            (i, hi, di), (j, hj, dj) = rows[2], rows[3]
            con.execute("UPDATE entries SET data = ?, leaf_hash = ? WHERE idx = ?", (dj, hj, i))
            con.execute("UPDATE entries SET data = ?, leaf_hash = ? WHERE idx = ?", (di, hi, j))
        elif how == "truncate":
            con.execute("DELETE FROM entries WHERE idx >= ?", (len(rows) - 3,))
        elif how == "append":
            forged = AuditEvent(
                kind="result.released",
                actor="analyst/mallory",
                timestamp_ms=1,
                details={"note": "forged"},
            ).entry_bytes()
            con.execute(
                "INSERT INTO entries VALUES (?, ?, ?)", (len(rows), leaf_hash(forged), forged)
            )


def test_intact_copy_of_the_gateway_log_verifies(audited: LocalConsortium, tmp_path: Path) -> None:
    copy = _snapshot(audited.files.root / "audit.sqlite", tmp_path / "copy.sqlite")
    result = _verify_file(audited, copy)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("how", ["change", "delete", "reorder", "truncate", "append"])
def test_tampering_with_the_sqlite_file_is_detected(
    audited: LocalConsortium, tmp_path: Path, how: str
) -> None:
    copy = _snapshot(audited.files.root / "audit.sqlite", tmp_path / f"{how}.sqlite")
    _tamper(copy, how)
    result = _verify_file(audited, copy)
    assert result.exit_code == 3, result.output
    assert "✗ gateway log:" in result.output
    assert "audit verification failed" in result.output


def test_split_view_between_gateway_and_a_node_is_detected(
    audited: LocalConsortium, tmp_path: Path
) -> None:
    """A gateway (its key compromised) serves auditors a rewritten history, validly signed."""
    files = audited.files
    layout = load_layout(files.pki_dir)
    key = load_signing_key(
        layout.signing_paths(Identity("gateway", "gateway", layout.trust_domain))[1]
    )
    origin = log_origin(layout.trust_domain, "gateway", "gateway")
    honest = _snapshot(files.root / "audit.sqlite", tmp_path / "honest.sqlite")
    forked = SqliteAuditLog(
        tmp_path / "forked.sqlite", origin=origin, signing_key=key, clock=lambda: 1
    )
    with sqlite3.connect(honest) as con:
        for (data,) in con.execute("SELECT data FROM entries ORDER BY idx"):
            event = AuditEvent.from_entry(data)
            if event.actor != "analyst/bob":  # bob's query is erased from history
                forked.append(event)
            forked.signed_tree_head()
    forked.close()
    witness = _snapshot(
        files.root / "nodes" / "bank-a" / "audit.sqlite", tmp_path / "bank-a.sqlite"
    )
    alone = _verify_file(audited, tmp_path / "forked.sqlite")
    assert alone.exit_code == 0, "a rewritten log signed with the gateway's key verifies on its own"
    crossed = _verify_file(audited, tmp_path / "forked.sqlite", f"--node-db=bank-a={witness}")
    assert crossed.exit_code == 3, crossed.output
    assert "split view" in crossed.output


def test_node_refuses_an_order_the_gateway_did_not_log(audited: LocalConsortium) -> None:
    forged = forge(audited.files, count_plan())
    request = node_pb2.SignedOrder(order=forged.data, signature=forged.signature)  # no evidence
    with pytest.raises(grpc.RpcError) as caught:
        gateway_stub(audited, "bank-a").Execute(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    events = [
        AuditEvent.from_entry(d) for d in _entries(audited.files.root / "nodes/bank-a/audit.sqlite")
    ]
    assert events[-1].kind == "order.refused"  # the refusal is in the node's witness log


def _entries(db: Path) -> list[bytes]:
    with sqlite3.connect(db) as con:
        return [row[0] for row in con.execute("SELECT data FROM entries ORDER BY idx")]
