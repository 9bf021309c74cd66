"""The analyst's and the approver's clients: what the CLI uses, and what a notebook calls.

>>> from mpc_gateway.client import GatewayClient
>>> client = GatewayClient.from_pki("var/demo/pki", "analyst/alice", "127.0.0.1:50050")
>>> result = client.query("loans", ["count", "mean:exposure"], group_by="sector")
>>> result.records()        # plain data
>>> result.to_pandas()      # a DataFrame
>>> client.sql("SELECT sector, rating, COUNT(*) FROM loans GROUP BY sector, rating")

Every computation runs through :meth:`GatewayClient.run` (``query``, ``score``,
``concentration``, ``quantiles``, ``histogram``, ``check`` and ``train`` name one each:
:mod:`mpc_gateway.client_calls`). Errors come
back as the :mod:`mpc_gateway.errors` classes (``InvalidQueryError``,
``PolicyDeniedError``, ``NodeUnavailableError``, ...), with the server's message.

Results arrive sealed to the analyst's key-agreement key (``sealing.crt`` /
``sealing.key`` beside its TLS files): the client checks that every node
cosigned the logged release, decrypts every node's shares, recombines and
decodes them (:func:`mpc_gateway.orders.release.open_relayed`). The gateway
never sees the result.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpc_gateway.client_calls import ComputationCalls
from mpc_gateway.computations import Released, Request, computation
from mpc_gateway.computations.scoring import ScoringModel
from mpc_gateway.errors import (
    ConfigurationError,
    DeadlineExceededError,
    GatewayError,
    IntegrityError,
    PolicyDeniedError,
    ProtocolAbortedError,
)
from mpc_gateway.oprf import (
    MAX_POINTS,
    Answer,
    Blinded,
    PublicKey,
    blind,
    finish,
    normal_id,
    read_key_statement,
    sign_request,
)
from mpc_gateway.orders.release import Verified, open_relayed, verified_signers
from mpc_gateway.pki import (
    identity_from_certificate,
    load_layout,
)
from mpc_gateway.pki import verify as verify_signature
from mpc_gateway.pki.ca import tls_from_pki
from mpc_gateway.pki.identity import SIGNING_ROLES
from mpc_gateway.pki.layout import RECEIVING_ROLES
from mpc_gateway.pki.receiver import ReceiverKey, load_receiver_key
from mpc_gateway.pki.sealing import SealedWeights
from mpc_gateway.pki.signing import load_signing_key
from mpc_gateway.proto.v1 import gateway_pb2, gateway_pb2_grpc
from mpc_gateway.rpc.approver import ApproverClient, PendingQuery
from mpc_gateway.rpc.client import HealthClient, ServiceClient
from mpc_gateway.rpc.convert import dataset_from_proto, request_from_proto, result_from_proto
from mpc_gateway.rpc.server import TlsMaterial
from mpc_gateway.sql import present, read_statement
from mpc_gateway.text import unicode_checked

__all__ = [
    "GatewayClient",
    "HealthClient",
    "QueryStatus",
    "ApproverClient",
    "PendingQuery",
    "Released",
    "tls_from_pki",
]


@dataclass(frozen=True)
class QueryStatus:
    """Where a query that needed approval stands."""

    query_id: str
    state: str  # waiting, running, released, rejected, failed, abandoned (by a restart)
    waiting_for: tuple[str, ...]
    reason: str
    result: Released | None


class GatewayClient(ComputationCalls, ServiceClient):
    def __init__(
        self,
        address: str,
        tls: TlsMaterial,
        timeout_s: float = 120.0,
        purpose: str = "",
        receiver: ReceiverKey | None = None,
        signer: tuple[Ed25519PrivateKey, bytes] | None = None,
    ) -> None:
        """``receiver``: the analyst's key-agreement key, which results are sealed to;
        ``signer``: its signing key and certificate (PEM), which pseudonym requests are signed with.
        """
        super().__init__(address, tls, timeout_s, f"gateway at {address}")
        self.purpose = purpose  # declared with every query that names none
        self.receiver, self.signer = receiver, signer
        self._ca = x509.load_pem_x509_certificate(tls[0])
        self._identity = identity_from_certificate(tls[1])
        self._verified: Verified = {}  # signing certificates checked against the CA
        self._keys: set[PublicKey] = set()  # pseudonym keys whose public shares checked out
        self._stub = gateway_pb2_grpc.GatewayServiceStub(self._channel)

    @classmethod
    def from_pki(
        cls, pki_dir: str | Path, identity: str, address: str, **kwargs: Any
    ) -> GatewayClient:
        """A client using ``identity`` (``"role/name"``) from a consortium PKI directory."""
        tls = tls_from_pki(pki_dir, identity)
        who = identity_from_certificate(tls[1])
        layout = load_layout(Path(pki_dir))
        if who.role in RECEIVING_ROLES and "receiver" not in kwargs:
            kwargs["receiver"] = load_receiver_key(*layout.sealing_paths(who))
        if who.role in SIGNING_ROLES and "signer" not in kwargs:
            cert, key = layout.signing_paths(who)
            if key.exists():  # an analyst issued before analysts signed has none
                kwargs["signer"] = (load_signing_key(key), cert.read_bytes())
        return cls(address, tls, **kwargs)

    def _open(self, message: gateway_pb2.ComputationResult, request: Request | None) -> Released:
        """Check, decrypt and decode a result sealed to this client's key."""
        if self.receiver is None:
            raise ConfigurationError(
                f"{self._identity} has no sealing key to open results with "
                "(GatewayClient(..., receiver=load_receiver_key(...)) or from_pki)"
            )
        relayed = result_from_proto(message)
        return open_relayed(
            relayed, self.receiver, self._identity, self._ca, request, self._verified
        )

    def datasets(self) -> list[dict[str, Any]]:
        reply = self._call(self._stub.ListDatasets, gateway_pb2.ListDatasetsRequest())
        return [dataset_from_proto(d) for d in reply.datasets]

    # --- any computation ---------------------------------------------------------------------

    def request(
        self, kind: str, dataset: str, *, where: str = "", purpose: str | None = None, **fields: Any
    ) -> gateway_pb2.ComputationRequest:
        """The wire request for computation ``kind`` (the gateway validates everything)."""
        with unicode_checked("the request"):
            message = gateway_pb2.ComputationRequest(
                dataset=dataset,
                where=where,
                purpose=self.purpose if purpose is None else purpose,
                receiver_certificate=self._receiver_pem(),
            )
            getattr(message, kind).CopyFrom(computation(kind).job_message(**fields))
        return message

    def run(
        self, kind: str, dataset: str, *, where: str = "", purpose: str | None = None, **fields: Any
    ) -> Released:
        """Run computation ``kind`` (aggregate, score, ...) with its ``fields``.

        A query that needs approval raises ApprovalMissingError naming its id;
        :meth:`wait` returns its result once approvers have decided.
        """
        message = self.request(kind, dataset, where=where, purpose=purpose, **fields)
        return self._open(self._call(self._stub.Run, message), _accepted(message))

    def explain(
        self, kind: str, dataset: str, *, where: str = "", purpose: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """The dry run: which rules pass or fail, approvals needed, what would be disclosed."""
        return self._explain(self.request(kind, dataset, where=where, purpose=purpose, **fields))

    def _explain(self, message: gateway_pb2.ComputationRequest) -> dict[str, Any]:
        reply = self._call(self._stub.Explain, message)
        return {
            "allowed": reply.allowed,
            "plan_hash": reply.plan_hash,
            **json.loads(reply.report_json),
        }

    # --- SQL ---------------------------------------------------------------------------------

    def sql(self, statement: str, *, purpose: str | None = None) -> Released:
        """Run a SQL statement (docs/sql.md): the same plan, policies and result as its flags.

        Its aliases, ORDER BY and LIMIT are applied here, to the released values only.
        """
        message = self._statement(statement, purpose)
        released = self._open(self._call(self._stub.Run, message), _accepted(message))
        return present(released, read_statement(statement))

    def explain_sql(self, statement: str, *, purpose: str | None = None) -> dict[str, Any]:
        """The dry run of a SQL statement, as :meth:`explain` for a flag query."""
        return self._explain(self._statement(statement, purpose))

    def _statement(self, statement: str, purpose: str | None) -> gateway_pb2.ComputationRequest:
        chosen = self.purpose if purpose is None else purpose
        with unicode_checked("the statement"):
            message = gateway_pb2.ComputationRequest(
                sql=statement, purpose=chosen, receiver_certificate=self._receiver_pem()
            )
        return message

    def _receiver_pem(self) -> bytes:
        """The certificate the nodes seal results to (empty without a receiver key)."""
        return b"" if self.receiver is None else self.receiver.certificate_pem

    # --- privacy budgets ---------------------------------------------------------------------

    def budget(self, dataset: str = "") -> list[dict[str, str]]:
        """This analyst's privacy budgets (zCDP ρ): per policy and holder, spent and left."""
        reply = self._call(self._stub.GetBudget, gateway_pb2.BudgetRequest(dataset=dataset))
        fields = ("owner", "dataset", "holder", "who", "period", "current", "rho", "spent", "left")
        return [{name: getattr(b, name) for name in fields} for b in reply.budgets]

    # --- scoring models ----------------------------------------------------------------------

    def register_model(self, model: ScoringModel, sealed: SealedWeights | None = None) -> str:
        """Register a scoring model (owner: this client's identity); returns its model id."""
        request = gateway_pb2.RegisterModelRequest(
            model_json=model.model_dump_json(),
            sealed_weights_json=sealed.model_dump_json() if sealed is not None else "",
        )
        return str(self._call(self._stub.RegisterModel, request).model_id)

    def models(self) -> list[ScoringModel]:
        reply = self._call(self._stub.ListModels, gateway_pb2.ListModelsRequest())
        return [ScoringModel.model_validate_json(m.model_json) for m in reply.models]

    # --- persons' pseudonyms ----------------------------------------------------------------

    def pseudonyms(self, national_ids: Sequence[str], *, purpose: str | None = None) -> list[str]:
        """The pseudonyms of ``national_ids`` under the nodes' joint key (:mod:`mpc_gateway.oprf`).

        Each id is blinded here: the gateway and the nodes see uniform group points
        only. Sent in requests of at most ``MAX_POINTS`` ids, the next one sent before
        this client finishes the last, so the nodes evaluate while it unblinds; every id
        is checked before the first is sent, so a bad id in a later request cannot fail
        the call after earlier requests spent their allowance. Every node's answers are
        checked with its proof against the key's public values, which every node signed
        (a node that used a wrong share, or answers replaced on the way, are caught).
        """
        why = self.purpose if purpose is None else purpose
        normal = [normal_id(x) for x in national_ids]
        out: list[str] = []
        waiting: tuple[list[Blinded], grpc.Future[Any]] | None = None
        try:
            for start in range(0, len(national_ids), MAX_POINTS):
                blinded = [blind(x) for x in normal[start : start + MAX_POINTS]]
                sent = self._send(self._stub.Pseudonymise, self._pseudonym_request(blinded, why))
                previous, waiting = waiting, (blinded, sent)
                if previous is not None:
                    out += self._unblinded(*previous)
            if waiting is not None:
                out += self._unblinded(*waiting)
        except BaseException:
            if waiting is not None:  # the next request is not left running unread
                waiting[1].cancel()
            raise
        return out

    def _pseudonym_request(
        self, blinded: Sequence[Blinded], purpose: str
    ) -> gateway_pb2.PseudonymRequest:
        points = [b.point for b in blinded]
        request = gateway_pb2.PseudonymRequest(points=points, purpose=purpose)
        if self.signer is not None:  # unsigned, the gateway says why it refuses
            signed = sign_request(self._identity, *self.signer, purpose, points)
            request.signed.body = signed.body
            request.signed.signature = signed.signature
            request.signed.signing_certificate = signed.certificate
        return request

    def _unblinded(self, blinded: Sequence[Blinded], sent: grpc.Future[Any]) -> list[str]:
        """The pseudonyms of one request's ids, once its answers' proofs check out."""
        reply = self._reply(sent)
        try:
            public = _signed_key(reply, self._ca, self._verified, self._identity.trust_domain)
            if public not in self._keys:
                public.check()
                self._keys.add(public)
            answers = {a.party: Answer(a.points, a.proof) for a in reply.answers}
            return finish(blinded, answers, public)
        except IntegrityError as err:
            err.query_id = reply.query_id
            raise

    # --- queries that needed approval --------------------------------------------------------

    def status(self, query_id: str) -> QueryStatus:
        reply = self._call(
            self._stub.GetQueryStatus, gateway_pb2.QueryStatusRequest(query_id=query_id)
        )
        result = self._open(reply.result, None) if reply.HasField("result") else None
        return QueryStatus(
            reply.query_id, reply.state, tuple(reply.waiting_for), reply.reason, result
        )

    def wait(self, query_id: str, timeout_s: float = 60.0, poll_s: float = 0.2) -> Released:
        """Block until a query that needed approval is released; raise if rejected or failed."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.status(query_id)
            if status.result is not None:
                return status.result
            if status.state in ("rejected", "failed", "abandoned", "released"):
                # released without a result: it was released before the gateway restarted
                error = PolicyDeniedError if status.state == "rejected" else ProtocolAbortedError
                raise error(f"query {query_id} {status.state}: {status.reason}", query_id)
            if time.monotonic() > deadline:
                waiting = (
                    f", waiting for {', '.join(status.waiting_for)}" if status.waiting_for else ""
                )
                raise DeadlineExceededError(f"query {query_id} is still {status.state}{waiting}")
            time.sleep(poll_s)


def _signed_key(
    reply: gateway_pb2.PseudonymReply, ca: x509.Certificate, verified: Verified, domain: str
) -> PublicKey:
    """The key's public values, as every answering node signed them alike; IntegrityError if not.

    Not yet checked to be consistent (:meth:`PublicKey.check`): the caller remembers keys it did.
    """
    signers = verified_signers([a.signing_certificate for a in reply.answers], ca, verified)
    nodes = {i.name: k for i, k in signers.items() if (i.role, i.trust_domain) == ("node", domain)}
    publics = set()
    for answer in reply.answers:
        node, party, public = read_key_statement(answer.key_statement)
        key = nodes.get(answer.node)
        if key is None or (node, party) != (answer.node, answer.party):
            raise IntegrityError(f"node {answer.node[:60]}'s answers carry another node's key")
        verify_signature(key, answer.key_signature, answer.key_statement, what="key statement")
        publics.add(public)
    if len(publics) != 1:
        raise IntegrityError("the nodes hold shares of different pseudonym keys")
    return publics.pop()


def _accepted(message: gateway_pb2.ComputationRequest) -> Request | None:
    """The request as the gateway read it (it accepted it), to label what it released."""
    try:
        return request_from_proto(message)
    except GatewayError:
        return None
