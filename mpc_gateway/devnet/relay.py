"""A TCP relay that holds every chunk for a one-way delay: network latency without netem.

The kernel this project is measured on has no ``netem`` qdisc, so a round-trip
time is made in user space: a :class:`DelayRelay` listens on an address per
:class:`Route` and forwards each connection to the route's target, writing
every chunk it reads, in either direction, ``delay_s`` after it read it (RTT/2:
a request and its answer both cross it). Order and bytes are kept; a half-close
(EOF in one direction) is passed on as one once the data before it is
delivered; TCP_NODELAY is set on both sides, so nothing waits for Nagle. A relay
never delivers early; it may deliver late by the timer's wake-up (reported as
``late_ms``).

It also records *flights*: a maximal run of chunks in one direction of one
connection, a new one starting when the other direction has sent since, or after
a pause of half the delay. :func:`critical_path` chains them into the
sequential one-way trips a protocol needed.

Run it as its own process (``python -m mpc_gateway.devnet.relay ROUTE...``),
never in the event loop (or the interpreter) of what it measures:
:class:`RelayProcess` starts it and talks to it over its stdin and stdout, one
JSON line each way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import IO, Any

__all__ = ["DelayRelay", "Flight", "RelayProcess", "Route", "critical_path", "main"]

_CHUNK = 65536
_QUEUED_CHUNKS = 256  # per direction: beyond it, reading waits (backpressure)
_MAX_FLIGHTS = 100_000
_AHEAD_S = 0.001  # the event loop's timers wake up to 1 ms late: wake early, then sleep exactly
_Queue = asyncio.Queue[tuple[float, bytes]]  # (when it is due, the chunk; b"" for EOF)


@dataclass(frozen=True)
class Route:
    """Connections to ``listen`` are relayed to ``target``; ``label`` names them in flights."""

    label: str
    listen: tuple[str, int]
    target: tuple[str, int]

    @classmethod
    def parse(cls, text: str) -> Route:
        """``LABEL=HOST:PORT=HOST:PORT`` (listen, then target)."""
        label, listen, target = text.split("=")
        return cls(label, _address(listen), _address(target))

    def text(self) -> str:
        return f"{self.label}={_join(self.listen)}={_join(self.target)}"


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def _join(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class Flight:
    """Chunks one side sent in a row: on which route and connection, which way, when."""

    route: str
    connection: int
    client: str  # the host of the connecting side
    server: str  # the host of the route's target
    upstream: bool  # from the connecting side towards the route's target
    first: float  # when the relay read its first chunk (time.monotonic(), s)
    last: float  # ... and its last
    size: int  # bytes

    @property
    def sender(self) -> str:
        return self.client if self.upstream else self.server

    @property
    def receiver(self) -> str:
        return self.server if self.upstream else self.client

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Flight:
        return cls(**data)


@dataclass
class _Connection:
    """What the flights of one relayed connection need: its id and its last flight each way."""

    route: str
    ident: int
    client: str
    server: str
    current: dict[bool, Flight | None] = field(default_factory=lambda: {True: None, False: None})
    last_way: bool | None = None


class DelayRelay:
    """Every route's listener, in the running event loop; :meth:`start`, then :meth:`close`."""

    def __init__(self, routes: Sequence[Route], delay_s: float = 0.0) -> None:
        self.routes, self.delay_s = tuple(routes), delay_s
        self._servers: list[asyncio.Server] = []
        self._flights: list[Flight] = []
        self._connections = 0
        self._deliveries, self._late_s, self._latest_s = 0, 0.0, 0.0

    async def start(self) -> None:
        for route in self.routes:
            server = await asyncio.start_server(partial(self._relay, route), *route.listen)
            self._servers.append(server)
        # a route that asked for port 0 listens where the system put it
        self.routes = tuple(
            Route(r.label, server.sockets[0].getsockname()[:2], r.target)
            for r, server in zip(self.routes, self._servers, strict=True)
        )

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()

    def take(self) -> dict[str, Any]:
        """Every flight recorded since the last call, and how late deliveries were (ms)."""
        flights, self._flights = self._flights, []
        late = {
            "deliveries": self._deliveries,
            "mean_ms": 1000 * self._late_s / max(self._deliveries, 1),
            "max_ms": 1000 * self._latest_s,
        }
        self._deliveries, self._late_s, self._latest_s = 0, 0.0, 0.0
        return {"flights": [asdict(f) for f in flights], "late_ms": late}

    async def _relay(
        self, route: Route, down_reader: asyncio.StreamReader, down_writer: asyncio.StreamWriter
    ) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*route.target)
        except OSError:
            down_writer.transport.abort()  # as if the target had refused the connection
            return
        writers = (down_writer, up_writer)
        for writer in writers:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._connections += 1
        peer = down_writer.get_extra_info("peername")
        client = str(peer[0]) if peer else ""
        connection = _Connection(route.label, self._connections, client, route.target[0])
        towards_target: _Queue = asyncio.Queue(_QUEUED_CHUNKS)
        towards_client: _Queue = asyncio.Queue(_QUEUED_CHUNKS)
        try:
            async with asyncio.TaskGroup() as group:  # one failing cancels the others
                group.create_task(self._read(connection, True, down_reader, towards_target))
                group.create_task(self._deliver(towards_target, up_writer))
                group.create_task(self._read(connection, False, up_reader, towards_client))
                group.create_task(self._deliver(towards_client, down_writer))
        except* OSError:
            for writer in writers:
                writer.transport.abort()  # one side reset: so does the other
        finally:
            for writer in writers:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    async def _read(
        self, connection: _Connection, upstream: bool, source: asyncio.StreamReader, queue: _Queue
    ) -> None:
        """Queue every chunk of ``source`` with the time it is due, then EOF (``b""``)."""
        while data := await source.read(_CHUNK):
            self._record(connection, upstream, len(data))
            await queue.put((time.monotonic() + self.delay_s, data))
        await queue.put((time.monotonic() + self.delay_s, b""))

    async def _deliver(self, queue: _Queue, sink: asyncio.StreamWriter) -> None:
        """Write each queued chunk when it is due, in order; pass EOF on as a half-close."""
        while True:
            due, data = await queue.get()
            if (wait := due - time.monotonic()) > _AHEAD_S:
                await asyncio.sleep(wait - _AHEAD_S)
            if (wait := due - time.monotonic()) > 0:
                # under a millisecond, exactly (the loop's timers are coarser); the whole relay
                # waits that long, which shows in late_ms if it delays another delivery
                time.sleep(wait)
            late = time.monotonic() - due
            self._deliveries, self._late_s = self._deliveries + 1, self._late_s + late
            self._latest_s = max(self._latest_s, late)
            if not data:
                if sink.can_write_eof():
                    sink.write_eof()
                return
            sink.write(data)
            await sink.drain()

    def _record(self, connection: _Connection, upstream: bool, size: int) -> None:
        now = time.monotonic()
        flight = connection.current[upstream]
        pause = flight is not None and now - flight.last >= max(self.delay_s / 2, _AHEAD_S)
        if flight is None or connection.last_way is not upstream or pause:
            flight = Flight(
                connection.route,
                connection.ident,
                connection.client,
                connection.server,
                upstream,
                now,
                now,
                0,
            )
            connection.current[upstream] = flight
            if len(self._flights) < _MAX_FLIGHTS:  # until someone takes them
                self._flights.append(flight)
        flight.last, flight.size = now, flight.size + size
        connection.last_way = upstream


def critical_path(flights: Sequence[Flight], delay_s: float) -> list[Flight]:
    """The longest chain of flights each sent by the receiver of the one before, once it arrived.

    A flight arrives ``delay_s`` after its last chunk was read; a flight its
    receiver sends later may be its consequence, one sent earlier or by anyone
    else cannot be. The chain's length is the number of sequential one-way trips
    (an upper bound: a flight that could be a consequence need not be one).
    Meaningless without a delay.
    """
    ordered = sorted(flights, key=lambda f: f.first)
    longest: list[tuple[int, int]] = []  # per flight: (chain length, index of the one before)
    for flight in ordered:
        before = [
            (longest[j][0], j)
            for j, earlier in enumerate(ordered[: len(longest)])
            if earlier.receiver == flight.sender and earlier.last + delay_s <= flight.first
        ]
        length, previous = max(before, default=(0, -1))
        longest.append((length + 1, previous))
    if not longest:
        return []
    at = max(range(len(longest)), key=lambda i: longest[i][0])
    path = []
    while at >= 0:
        path.append(ordered[at])
        at = longest[at][1]
    return path[::-1]


class RelayProcess:
    """A :class:`DelayRelay` in a process of its own: started, steered and stopped from here."""

    def __init__(self, routes: Sequence[Route], delay_s: float = 0.0) -> None:
        self.routes, self._delay_s = tuple(routes), delay_s
        self._process: subprocess.Popen[str] | None = None
        self._errors: IO[bytes] = io.BytesIO()

    def __enter__(self) -> RelayProcess:
        command = [sys.executable, "-m", __name__, f"--delay-s={self._delay_s}"]
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__
        self._process = subprocess.Popen(
            [*command, *(route.text() for route in self.routes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,  # a file: a pipe nobody reads could fill and stall the relay
            text=True,
        )
        try:
            ready = self._ask(None)  # its first line says where it listens
        except BaseException:
            self.__exit__()
            raise
        self.routes = tuple(Route.parse(text) for text in ready["ready"])
        return self

    def __exit__(self, *exc: object) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None and process.stdout is not None
        process.stdin.close()  # the relay stops at the end of its commands
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        self._errors.close()

    @property
    def delay_s(self) -> float:
        return self._delay_s

    @delay_s.setter
    def delay_s(self, value: float) -> None:
        """Every chunk read from now on waits ``value`` (chunks already queued keep theirs)."""
        self._ask(f"delay {value!r}")
        self._delay_s = value

    def take(self) -> tuple[list[Flight], dict[str, float]]:
        """The flights since the last call, and the deliveries' lateness (``late_ms``)."""
        answer = self._ask("take")
        return [Flight.from_json(f) for f in answer["flights"]], answer["late_ms"]

    def _ask(self, command: str | None) -> dict[str, Any]:
        process = self._process
        if process is None or process.stdin is None or process.stdout is None:
            raise RuntimeError("the relay is not running: use it in a with block")
        if command is not None:
            process.stdin.write(command + "\n")
            process.stdin.flush()
        line = process.stdout.readline()
        if not line:
            process.wait()
            self._errors.seek(0)
            error = self._errors.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"the relay exited with code {process.returncode}: {error}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the relay refused {command!r}: {answer['error']}")
        return answer


async def _serve(relay: DelayRelay) -> None:
    """Answer commands on stdin, one JSON line each on stdout, until stdin closes."""
    await relay.start()
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    _answer({"ready": [route.text() for route in relay.routes]})
    while line := (await commands.readline()).decode().strip():
        verb, _, argument = line.partition(" ")
        if verb == "delay":
            relay.delay_s = float(argument)
            _answer({"delay_s": relay.delay_s})
        elif verb == "take":
            _answer(relay.take())
        else:
            _answer({"error": f"unknown command {verb!r}: delay SECONDS | take"})
    await relay.close()


def _answer(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mpc_gateway.devnet.relay")
    parser.add_argument("routes", nargs="+", type=Route.parse, help="LABEL=LISTEN=TARGET")
    parser.add_argument("--delay-s", type=float, default=0.0, help="one-way delay (RTT/2)")
    args = parser.parse_args(argv)
    asyncio.run(_serve(DelayRelay(args.routes, args.delay_s)))


if __name__ == "__main__":
    main()
