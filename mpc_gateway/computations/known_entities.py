"""The minimum batch, decided inside the MPC: entities the institutions know, not strings.

A policy's ``min_batch`` reaches a plan as ``controls.min_entities`` (the largest
of every governing policy's), so every node enforces it on the signed order.
Counting the distinct strings of a request (rule ``risk.batch``) is only the
cheap first check: one real key padded with invented ones passes it. So every
node also inputs one bit per distinct key, "I hold at least one row of this
entity" (under the plan's filter); the MPC ORs the bits across nodes, counts
the entities known to at least one institution, compares that count with
``min_entities`` and multiplies every output by the result
(:mod:`mpc_gateway.mpc.programs.known`). A batch that fails releases zeros and
the failed bit, which the receiver turns into a refusal that names no key.

Without differential privacy the bit is exact: one bit per query, whether the
batch holds enough known entities. Under DP (a scoring job's count) the count
of known entities is a noisy release of sensitivity 1 (one loan makes at most
one entity known): every node adds a full-scale sample to it, so the bit is
differentially private too, not an exact membership oracle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mpc_gateway.computations.base import Blocks
from mpc_gateway.computations.shared import bits, block
from mpc_gateway.errors import InvalidRequestError, PolicyDeniedError
from mpc_gateway.policy.controls import OutputControls
from mpc_gateway.privacy import NoisyRelease
from mpc_gateway.privacy.noise import TAIL

__all__ = ["ENOUGH_KNOWN", "KnownEntities", "known_entities"]

ENOUGH_KNOWN = "enough_known"
"""The released block: [1], 1 if at least ``min_entities`` of the batch are known."""


@dataclass(frozen=True)
class KnownEntities:
    """The minimum-batch check of one job: its batch's distinct entities, the minimum, the noise.

    ``noise`` is the known count's noisy release under DP (None: the count is exact).
    """

    entities: int
    min_entities: int
    parties: int
    noise: NoisyRelease | None = None

    @property
    def bits(self) -> int:
        """Bounds the comparison: ``|known + every node's noise - min_entities| < 2**(bits-1)``."""
        headroom = self.parties * TAIL * math.ceil(self.noise.scale) if self.noise else 0
        return (self.entities + self.min_entities + headroom).bit_length() + 1

    def program_args(self, presence: np.ndarray) -> dict[str, Any]:
        """This node's part of the check: its 0/1 bit per distinct entity of the batch."""
        if presence.shape != (self.entities,) or any(int(v) not in (0, 1) for v in presence):
            raise InvalidRequestError(f"local presence must be {self.entities} bits")
        return {
            "known_local": np.asarray(presence, dtype=object),
            "min_entities": self.min_entities,
            "known_bits": self.bits,
        }

    def check(self, blocks: Blocks) -> None:
        """At the receiver: PolicyDeniedError unless the MPC found enough known entities."""
        if bits(block(blocks, ENOUGH_KNOWN, 1), "batch check")[0]:
            return
        counted = " (by a count with noise, under differential privacy)" if self.noise else ""
        raise PolicyDeniedError(
            f"refused by rule risk.batch: fewer than {self.min_entities} of the batch's "
            f"entities are known to the institutions{counted}; nothing else was released"
        )

    def describe(self) -> str:
        """The disclosure's clause for it."""
        noisy = " (counted with noise)" if self.noise else ""
        return (
            f"only if at least {self.min_entities} of them are known to the institutions"
            f"{noisy}; otherwise only that they are not"
        )


def known_entities(
    keys: Sequence[str],
    controls: OutputControls,
    parties: int,
    noise: NoisyRelease | None = None,
) -> KnownEntities:
    """The check a job over ``keys`` makes, with the plan's ``controls``."""
    return KnownEntities(len(set(keys)), controls.min_entities, parties, noise)
