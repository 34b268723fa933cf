"""Trailers that never end, over real sockets: the engine refuses them as it refuses an
over-limit head and lets go of the connection, and its memory does not grow with them."""

from __future__ import annotations

import contextlib
import select
import time

import gevent
import pytest

from support.http_peers import (
    Deployer,
    RawServer,
    RawServers,
    Stream,
    l7_service,
    response,
    serving,
    shared_deployer,
)
from support.memory import PeakMemory

l7 = shared_deployer("endless", workers=1)  # one worker: the one whose memory is watched

PIECE = b"v" * 8192
STREAM_BYTES = 4 * 1024 * 1024  # what a peer sends in all: far past the 64 KB head limit
# The worker's peak may rise by the head limit, a few reads and whatever else a request costs;
# a worker that buffered the trailer would rise by the whole stream.
GROWTH_BOUND = STREAM_BYTES // 4
CHUNKED_REQUEST = (
    b"POST /upload HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n0\r\nX-Endless: "
)


def worker_peak(l7: Deployer) -> PeakMemory:
    [worker] = l7.engine.status()["workers"]
    return PeakMemory(worker["pid"])


def send_until_answered(client: Stream, start: bytes) -> int:
    """Sends ``start``, then pieces until an answer is readable or the engine lets go;
    returns the bytes of pieces sent."""
    client.send(start)
    sent = 0
    with contextlib.suppress(OSError):
        while sent < STREAM_BYTES:
            readable, _, _ = select.select([client.sock], [], [], 0)
            if readable:
                break
            client.send(PIECE)
            sent += len(PIECE)
    return sent


def test_endless_request_trailer_gets_431_and_the_server_side_is_dropped(
    l7: Deployer, raw: RawServers
) -> None:
    server = raw(serving(lambda m: response(200, b"served")))
    [port] = l7.deploy(l7_service(server))
    peak = worker_peak(l7)
    client = Stream.connect(port)
    sent = send_until_answered(client, CHUNKED_REQUEST)
    head = client.head()
    assert head is not None and head.status == 431
    assert client.body(head, request=False).body == b"request head too large\n"
    assert client.closed_within(3), "the connection stayed open after a 431"
    # The server got the head and the data, then a closed connection, never a whole request.
    deadline = time.monotonic() + 3
    while not server.errors and time.monotonic() < deadline:
        gevent.sleep(0.05)
    assert server.requests == []
    assert server.errors, "the proxy left the server connection open"
    assert peak.growth() < GROWTH_BOUND, (peak.growth(), sent)


def test_endless_request_trailer_in_small_pieces_gets_431(l7: Deployer, raw: RawServers) -> None:
    # Small sends: the engine's reads hold a few of them each, and the limit still holds.
    server = raw(serving(lambda m: response(200, b"served")))
    [port] = l7.deploy(l7_service(server))
    client = Stream.connect(port)
    client.send(CHUNKED_REQUEST)
    sent = 0
    with contextlib.suppress(OSError):
        while sent < STREAM_BYTES and not select.select([client.sock], [], [], 0)[0]:
            client.send(b"v" * 100)
            sent += 100
    head = client.head()
    assert head is not None and head.status == 431


@pytest.fixture
def endless_response_server(raw: RawServers) -> tuple[RawServer, list[tuple[int, bool]]]:
    """A real server whose chunked response ends in a trailer value that never ends; records
    how many bytes of it went out, and whether the engine then closed the connection."""
    outcome: list[tuple[int, bool]] = []

    def endless(stream: Stream, server: RawServer, index: int) -> None:
        message = stream.request()
        assert message is not None
        server.requests.append(message)
        stream.send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Endless: "
        )
        count = 0
        with contextlib.suppress(OSError):
            while count < STREAM_BYTES:
                stream.send(PIECE)
                count += len(PIECE)
        # Hold the connection: only the engine may end it.
        outcome.append((count, stream.closed_within(10)))

    return raw(endless), outcome


def test_endless_response_trailer_cuts_both_connections(
    l7: Deployer, endless_response_server: tuple[RawServer, list[tuple[int, bool]]]
) -> None:
    server, outcome = endless_response_server
    [port] = l7.deploy(l7_service(server))
    peak = worker_peak(l7)
    client = Stream.connect(port)
    client.send(b"GET /stream HTTP/1.1\r\nHost: app.test\r\n\r\n")
    head = client.head()
    assert head is not None and head.status == 200 and head.chunked
    # The head and the data went out before the trailer went bad: the client's response
    # is cut short (no last chunk), which is how a failure after the head reaches it.
    with pytest.raises(EOFError):
        client.chunked()
    deadline = time.monotonic() + 5
    while not outcome and time.monotonic() < deadline:
        gevent.sleep(0.05)
    [(sent, closed)] = outcome
    assert closed, "the engine kept the server connection"
    assert peak.growth() < GROWTH_BOUND, (peak.growth(), sent)
