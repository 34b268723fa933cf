"""The callback relay of plain TCP sockets: mixed small messages and streams, backpressure,
and a relay started in the background that outlives the socket object it was given."""

from __future__ import annotations

import hashlib
import os
import socket
import struct

import gevent
import gevent.event
import pytest
from gevent import socket as gsocket

from passerelle.engine.relay import spliced, tcp
from passerelle.engine.relay.tally import ByteTally

from support.held_counts import loop_flushed

pytestmark = pytest.mark.skipif(not tcp.pipes.AVAILABLE, reason="no os.splice")


def _listener() -> gsocket.socket:
    sock = gsocket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock


class Joined:
    """A client and a real server joined by a relay started with start_relay()."""

    def __init__(self, idle_timeout: float = 10.0) -> None:
        front, back = _listener(), _listener()
        self.client = gsocket.create_connection(front.getsockname())
        accepted, _ = front.accept()
        upstream = tcp.connect(*back.getsockname(), timeout=2.0)
        self.server, _ = back.accept()
        front.close()
        back.close()
        self.cells = [0, 0, 0, 0]  # bytes delivered up (twice), down (twice)
        self.ended = gevent.event.AsyncResult()
        tally = ByteTally(loop_flushed(self.cells), (0, 1), (2, 3))
        tcp.start_relay(accepted, upstream, idle_timeout, tally, self._end)

    def _end(self, up: int, down: int) -> None:
        assert not self.ended.ready(), "on_end called twice"
        self.ended.set((up, down))


def _receive(sock: gsocket.socket, size: int) -> bytes:
    data = bytearray()
    with gevent.Timeout(10):
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            assert chunk, f"stream ended after {len(data)} of {size} bytes"
            data += chunk
    return bytes(data)


def test_small_messages_streams_and_small_messages_again() -> None:
    joined = Joined()
    client, server = joined.client, joined.server
    sent_up = sent_down = 0
    for round_ in range(3):
        for i in range(50):  # request/response, as keep-alive HTTP through an L4 service
            request = b"request %d.%d" % (round_, i)
            client.sendall(request)
            assert _receive(server, len(request)) == request
            response = os.urandom(100 + i)
            server.sendall(response)
            assert _receive(client, len(response)) == response
            sent_up += len(request)
            sent_down += len(response)
            # counted as delivered, not when the connection ends: statistics are live
            assert joined.cells == [sent_up, sent_up, sent_down, sent_down]
        stream = os.urandom(3 * 1024 * 1024 + round_)  # spliced, then back to copying
        sender = gevent.spawn(server.sendall, stream)
        assert hashlib.sha256(_receive(client, len(stream))).digest() == (
            hashlib.sha256(stream).digest()
        )
        sender.get(timeout=10)
        sent_down += len(stream)
    client.shutdown(socket.SHUT_WR)
    with gevent.Timeout(5):
        assert server.recv(1) == b""  # the half-close went through
    server.close()
    assert joined.ended.get(timeout=5) == (sent_up, sent_down)
    assert joined.cells == [sent_up, sent_up, sent_down, sent_down]
    with gevent.Timeout(5):
        assert client.recv(1) == b""
    client.close()


@pytest.mark.parametrize("copy_only", [False, True], ids=["splice", "copy"])
def test_a_destination_that_does_not_read_stops_the_source(
    monkeypatch: pytest.MonkeyPatch, copy_only: bool
) -> None:
    if copy_only:  # larger than any loopback receive buffer: every byte goes by recv and send
        monkeypatch.setattr(spliced, "SMALL", 8 << 20)
    relays: list[spliced.SpliceRelay] = []

    def recorded(*args: object) -> spliced.SpliceRelay:
        relay = spliced.SpliceRelay(*args)  # type: ignore[arg-type]
        relays.append(relay)
        return relay

    # Observed from outside: the relay may be compiled, whose methods cannot be replaced.
    monkeypatch.setattr(tcp, "SpliceRelay", recorded)
    joined = Joined()
    client, server = joined.client, joined.server
    payload = os.urandom(32 * 1024 * 1024)
    sender = gevent.spawn(client.sendall, payload)
    gevent.sleep(0.3)
    # The server reads nothing: the relay holds back, so the client cannot finish sending.
    assert not sender.ready()
    assert joined.cells[0] < len(payload)
    upstream = relays[0].upstream
    assert upstream.writer is not None and upstream.writer.active, "no wait for room"
    assert not upstream.reader.active, "the source is still read"
    if copy_only:  # copied bytes held back
        assert upstream.unsent
    else:  # a full pipe held back
        assert upstream.unsent is None and upstream.pending > 0
    received = _receive(server, len(payload))
    sender.get(timeout=10)
    assert received == payload
    client.close()
    server.close()
    assert joined.ended.get(timeout=5)[0] == len(payload)


def test_a_reset_ends_a_background_relay_once() -> None:
    joined = Joined()
    joined.client.sendall(b"abc")
    assert _receive(joined.server, 3) == b"abc"
    joined.server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    joined.server.close()
    assert joined.ended.get(timeout=5) == (3, 0)
    with pytest.raises(ConnectionResetError), gevent.Timeout(5):
        joined.client.recv(1)
    joined.client.close()
    gevent.sleep(0.1)  # a second on_end would fail the assertion in Joined._end
    assert joined.ended.get() == (3, 0)


def test_a_background_relay_times_out_when_idle() -> None:
    joined = Joined(idle_timeout=0.3)
    joined.client.sendall(b"x")
    assert _receive(joined.server, 1) == b"x"
    assert joined.ended.get(timeout=5) == (1, 0)
    with gevent.Timeout(5):
        assert joined.client.recv(1) == b""  # closed gracefully, not reset
        assert joined.server.recv(1) == b""
    joined.client.close()
    joined.server.close()
