"""The gateway's registry of scoring models: public model records and sealed weight shares.

A model owner (an analyst identity: a risk team, a supervisor) registers a
:class:`~mpc_gateway.computations.scoring.ScoringModel` under its own identity.
With secret weights it also sends the :class:`~mpc_gateway.pki.sealing.SealedWeights`: one
ciphertext per node, each openable only with that node's key, so the gateway
stores and forwards them without ever seeing a weight. A registered model is
immutable: its id is the hash of the public record, and re-registering the same
record with other sealed weights is refused (rename the model instead).

Records are JSON files, one per model, written atomically, so they survive a
restart.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from mpc_gateway.audit.trail import AuditTrail
from mpc_gateway.canonical import canonical_hash
from mpc_gateway.computations.scoring import ScoringModel, check_scorable
from mpc_gateway.errors import (
    ConfigurationError,
    GatewayError,
    InvalidRequestError,
    PolicyDeniedError,
)
from mpc_gateway.pki import Identity
from mpc_gateway.pki.sealing import SealedWeights
from mpc_gateway.query.schema import DatasetSchema

__all__ = ["RegisteredModel", "ModelRegistry", "register_recorded"]


@dataclass(frozen=True)
class RegisteredModel:
    model: ScoringModel
    sealed: SealedWeights | None
    registered_ms: int

    @property
    def model_id(self) -> str:
        return self.model.model_id

    def to_json(self) -> str:
        return json.dumps(
            {
                "model": self.model.model_dump(mode="json"),
                "sealed": None if self.sealed is None else self.sealed.model_dump(mode="json"),
                "registered_ms": self.registered_ms,
            }
        )


class ModelRegistry:
    """The registered models, kept in ``directory``; a model book for planning and running.

    A model is registered only if it can score over one of ``schemas`` at least (with
    ``nodes`` as the parties); records already stored are loaded as they are.
    """

    def __init__(
        self, directory: Path, nodes: Sequence[str], schemas: Sequence[DatasetSchema]
    ) -> None:
        self.directory = directory
        self.nodes = tuple(nodes)
        self.schemas = tuple(schemas)
        self._lock = threading.Lock()
        self._models: dict[str, RegisteredModel] = {}
        directory.mkdir(parents=True, exist_ok=True)
        for path in sorted(directory.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                entry = RegisteredModel(
                    ScoringModel.model_validate(data["model"]),
                    None
                    if data["sealed"] is None
                    else SealedWeights.model_validate(data["sealed"]),
                    int(data["registered_ms"]),
                )
            except (ValueError, KeyError, TypeError, ValidationError) as err:
                raise ConfigurationError(f"model record {path} is invalid: {err}") from None
            if path.stem != entry.model_id:
                raise ConfigurationError(f"model record {path} holds model {entry.model_id}")
            self._models[entry.model_id] = entry

    def register(
        self, caller: Identity, model: ScoringModel, sealed: SealedWeights | None
    ) -> tuple[RegisteredModel, bool]:
        """Store ``model`` for ``caller``; ``(entry, created)`` (False: it was already there)."""
        if model.owner != str(caller):
            raise PolicyDeniedError(
                f"{caller} may register models only under its own identity, not {model.owner!r}"
            )
        self._check_sealed(model, sealed)
        check_scorable(model, self.schemas, len(self.nodes))
        with self._lock:
            known = self._models.get(model.model_id)
            if known is not None:
                if known.sealed != sealed:
                    raise InvalidRequestError(
                        f"model {model.model_id} ({model.name!r}) is registered with other "
                        "weights: register new weights under a new model name"
                    )
                return known, False
            entry = RegisteredModel(model, sealed, time.time_ns() // 1_000_000)
            path = self.directory / f"{entry.model_id}.json"
            partial = path.with_suffix(".tmp")
            partial.write_text(entry.to_json(), encoding="utf-8")
            os.replace(partial, path)
            self._models[entry.model_id] = entry
            return entry, True

    def _check_sealed(self, model: ScoringModel, sealed: SealedWeights | None) -> None:
        if not model.weights_secret:
            if sealed is not None:
                raise InvalidRequestError("the model's weights are public: send no sealed weights")
            return
        if sealed is None:
            raise InvalidRequestError("a model with secret weights needs its sealed weight shares")
        if sealed.model_id != model.model_id:
            raise InvalidRequestError("the sealed weights are bound to another model")
        if sorted(sealed.shares) != sorted(self.nodes):
            raise InvalidRequestError(
                f"sealed weights must hold one share for each node: {', '.join(self.nodes)}"
            )

    def get(self, model_id: str) -> RegisteredModel:
        entry = self._models.get(model_id)
        if entry is None:
            raise InvalidRequestError(f"no registered model {model_id}")
        return entry

    def model(self, model_id: str) -> ScoringModel:
        return self.get(model_id).model

    def sealed(self, model_id: str) -> SealedWeights | None:
        return self.get(model_id).sealed

    def models(self) -> list[RegisteredModel]:
        return sorted(self._models.values(), key=lambda m: m.registered_ms)


def register_recorded(
    models: ModelRegistry,
    audit: AuditTrail,
    caller: Identity,
    model: ScoringModel,
    sealed: SealedWeights | None,
) -> RegisteredModel:
    """Register ``model`` for ``caller``, with its ``model.registered`` (or refused) entry."""
    try:
        entry, created = models.register(caller, model, sealed)
    except GatewayError as err:
        with audit.batch():
            audit.record(
                "model.refused",
                str(caller),
                decision="refused",
                details={"reason": err.public_message, "model_id": model.model_id},
            )
            audit.seal()
        raise
    if created:
        sealed_hash = None if sealed is None else canonical_hash(sealed.model_dump(mode="json"))
        with audit.batch():
            audit.record(
                "model.registered",
                str(caller),
                decision="registered",
                details={
                    "model_id": entry.model_id,
                    "model": model.model_dump(mode="json"),
                    "sealed_weights_sha256": sealed_hash,
                },
            )
            audit.seal()
    return entry
