"""The delaying relay keeps every byte, in order, both ways; a round trip costs at least the RTT."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from mpc_gateway.devnet.relay import Flight, RelayProcess, Route, critical_path

ONE_WAY_S = 0.02  # a 40 ms round trip
TRAILER = b"<the server's last words, sent after the client's EOF>"


@pytest.fixture()
def echo_server() -> Iterator[tuple[str, int]]:
    """Echoes every byte back; at the client's EOF sends a trailer and closes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    while data := conn.recv(65536):
                        conn.sendall(data)
                    conn.sendall(TRAILER)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[:2]
    listener.close()


@pytest.fixture()
def relay(echo_server: tuple[str, int]) -> Iterator[RelayProcess]:
    with RelayProcess([Route("echo", ("127.0.0.1", 0), echo_server)], ONE_WAY_S) as running:
        yield running


def _connect(relay: RelayProcess) -> socket.socket:
    conn = socket.create_connection(relay.routes[0].listen, timeout=5)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def _receive_all(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_bytes_cross_both_ways_intact_and_a_half_close_is_passed_on(relay: RelayProcess) -> None:
    payload = os.urandom(1 << 20)  # many chunks each way
    with _connect(relay) as conn:
        sender = threading.Thread(target=lambda: (conn.sendall(payload), conn.shutdown(1)))
        sender.start()
        received = _receive_all(conn)  # the trailer comes only once the server saw our EOF
        sender.join()
    assert received == payload + TRAILER


def test_a_round_trip_through_the_relay_takes_at_least_the_rtt(relay: RelayProcess) -> None:
    with _connect(relay) as conn:
        started = time.monotonic()
        conn.sendall(b"ping")
        assert conn.recv(4) == b"ping"
        elapsed = time.monotonic() - started
    assert elapsed >= 2 * ONE_WAY_S
    flights, late = relay.take()
    assert [f.upstream for f in critical_path(flights, ONE_WAY_S)][:2] == [True, False]
    assert late["deliveries"] >= 2


def test_the_delay_can_be_changed_while_it_runs(relay: RelayProcess) -> None:
    relay.delay_s = 0.0
    with _connect(relay) as conn:
        conn.sendall(b"quick")
        assert conn.recv(5) == b"quick"
    assert relay.delay_s == 0.0


def _flight(first: float, last: float, sender: str = "a", receiver: str = "b") -> Flight:
    return Flight("r", 1, sender, receiver, True, first, last, 10)


def test_the_critical_path_chains_flights_their_receiver_sent_once_the_one_before_arrived() -> None:
    request, answer = _flight(0.0, 0.001), _flight(0.012, 0.013, "b", "a")
    too_early = _flight(0.005, 0.006, "b", "a")  # sent before the request arrived
    someone_else = _flight(0.02, 0.02, "c", "a")  # not sent by who received the request
    follow_up = _flight(0.030, 0.030)
    path = critical_path([follow_up, someone_else, too_early, answer, request], delay_s=0.01)
    assert path == [request, answer, follow_up]
    assert critical_path([], 0.01) == []
