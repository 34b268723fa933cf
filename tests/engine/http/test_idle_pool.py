"""The pool of idle server connections: most recent first, a cap, and the sweep of old ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gevent import socket

from passerelle.engine.http.upstream import IDLE_LIFETIME, IdlePool, ServerConnection
from passerelle.engine.model.config import RealServer
from passerelle.engine.runtime.pools import ServerRuntime
from passerelle.engine.stats.counters import CounterTable


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerRuntime]:
    table = CounterTable(tmp_path / "counters", 1, create=True)
    yield ServerRuntime(RealServer(address="127.0.0.1", port=8080), 0, table)
    table.close()


@pytest.fixture
def connect(server: ServerRuntime) -> Iterator:
    peers: list[socket.socket] = []

    def make() -> ServerConnection:
        ours, theirs = socket.socketpair()
        peers.append(theirs)
        return ServerConnection(ours, server, server.plain_key)

    yield make
    for peer in peers:
        peer.close()


def test_the_most_recent_connection_is_taken_first(server, connect) -> None:
    pool = IdlePool()
    first, second = connect(), connect()
    pool.put(first)
    pool.put(second)
    assert pool.get(server.plain_key) is second
    assert pool.get(server.plain_key) is first
    assert pool.get(server.plain_key) is None


def test_the_sweep_closes_only_connections_idle_past_their_lifetime(server, connect) -> None:
    pool = IdlePool()
    old, older, fresh = connect(), connect(), connect()
    for conn in (older, old, fresh):
        pool.put(conn)
    older.idle_since -= IDLE_LIFETIME + 2
    old.idle_since -= IDLE_LIFETIME + 1
    pool.sweep()
    assert older.closed and old.closed and not fresh.closed
    assert pool.get(server.plain_key) is fresh
    assert pool.get(server.plain_key) is None
    pool.put(fresh)
    fresh.idle_since -= IDLE_LIFETIME + 1
    pool.sweep()
    assert fresh.closed
    assert pool.get(server.plain_key) is None
