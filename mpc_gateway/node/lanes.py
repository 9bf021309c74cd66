"""A node's MPC sessions, one per lane, each running its lane's jobs in its lane's order.

Every lane (:mod:`mpc_gateway.lanes`) has a :class:`~.session.SessionSequencer`
of its own: its own worker process, on the lane's MPC port, its own epochs and
sequence numbers. A long job in one lane never holds up a short query in the
other, and tearing one lane's session down (a failure, a deadline, the
gateway's abort) leaves the other's running. What this module checks, for
every order and session order, is that it places this node where its
configuration says: at its party index and at its MPC port *for that lane*.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from mpc_gateway.errors import IntegrityError
from mpc_gateway.lanes import LANES, Lane
from mpc_gateway.mpc.wire import WorkerConfig
from mpc_gateway.node.session import SessionSequencer, WorkerProcess
from mpc_gateway.orders import ExecutionOrder, Party, SessionOrder
from mpc_gateway.pki import Identity

__all__ = ["LaneSessions", "Spawn", "worker_spawner"]

Spawn = Callable[[Lane, int, tuple[Party, ...]], WorkerProcess]
"""Start a worker for (lane, epoch, parties): a session of that lane."""


def worker_spawner(pid: int, trust_domain: str, mpc_dir: Path) -> Spawn:
    """This node's MPC workers, as party ``pid``, its party certificates in ``mpc_dir``."""

    def spawn(lane: Lane, epoch: int, parties: tuple[Party, ...]) -> WorkerProcess:
        return WorkerProcess(
            WorkerConfig(
                pid=pid,
                addresses=tuple((p.host, p.port) for p in parties),  # the lane's MPC ports
                identities=tuple(Identity("node", p.name, trust_domain).spiffe_id for p in parties),
                mpc_dir=str(mpc_dir),
                epoch=epoch,
                lane=lane,
            )
        )

    return spawn


class LaneSessions:
    """Each lane's session at this node: ``name`` at ``party_index``, on ``port_of(lane)``."""

    def __init__(
        self, name: str, party_index: int, port_of: Callable[[Lane], int], spawn: Spawn
    ) -> None:
        self._name, self._index, self._port_of = name, party_index, port_of
        self._lanes = {lane: SessionSequencer(partial(spawn, lane)) for lane in LANES}

    def of(self, lane: Lane) -> SessionSequencer:
        return self._lanes[lane]

    def check_placement(self, lane: Lane, parties: tuple[Party, ...]) -> None:
        """IntegrityError unless ``parties`` put this node at its index and its ``lane`` port."""
        me = parties[self._index] if self._index < len(parties) else None
        port = self._port_of(lane)
        if me is None or me.name != self._name or me.port != port:
            raise IntegrityError(
                f"order does not place {self._name} at its MPC party index "
                f"{self._index} and its {lane} lane's port {port}"
            )

    def open(self, order: SessionOrder, deadline: float) -> None:
        """Connect the lane's session the (verified) session order announces."""
        self.check_placement(order.lane, order.parties)
        self._lanes[order.lane].open(order.epoch, order.parties, deadline)

    def run(
        self,
        order: ExecutionOrder,
        program: str,
        args: dict[str, Any],
        deadline: float,
        turns: int = 1,
    ) -> tuple[dict[str, Any], float]:
        """Run the order's MPC job at its place in its lane's order (a batch: ``turns`` places)."""
        sequencer = self._lanes[order.lane]
        return sequencer.run(
            order.epoch, order.sequence, order.parties, program, args, deadline, turns
        )

    def skip(self, order: ExecutionOrder, deadline: float, turns: int = 1) -> bool:
        """Pass over the turns of orders this node refused (its lane's session goes on)."""
        return self._lanes[order.lane].skip(
            order.epoch, order.sequence, order.parties, deadline, turns
        )

    def abort(self, lane: Lane, epoch: int, reason: str) -> bool:
        """Tear down ``lane``'s session of ``epoch``; the other lane is not touched."""
        return self._lanes[lane].abort(epoch, reason)

    def close(self) -> None:
        for sequencer in self._lanes.values():
            sequencer.close()
