"""Hostile HTTP input over real sockets: every smuggling shape is refused by the proxy itself,
the real server never sees it, and the engine keeps serving everyone else."""

from __future__ import annotations

import contextlib
import http.client
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

l7 = shared_deployer("hostile", workers=2)


@pytest.fixture
def target(l7: Deployer, raw: RawServers) -> tuple[RawServer, int]:
    """A real server that answers every request, behind a service with a 1 s header timeout."""
    server = raw(serving(lambda m: response(200, b"served")))
    [port] = l7.deploy(l7_service(server, header_timeout=1))
    return server, port


def still_serves(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/healthy")
    answer = conn.getresponse()
    assert (answer.status, answer.read()) == (200, b"served")
    conn.close()


def refused(port: int, data: bytes) -> tuple[int, Stream]:
    client = Stream.connect(port)
    with contextlib.suppress(OSError):  # the proxy may refuse before reading all of it
        client.send(data)
    head = client.head()
    assert head is not None, "closed without a response"
    return head.status, client


H = b"Host: app.test\r\n"
SMUGGLING = {
    "content-length-and-chunked": b"POST / HTTP/1.1\r\n"
    + H
    + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\n"
    + H
    + b"\r\n",
    "duplicate-content-length": b"POST / HTTP/1.1\r\n"
    + H
    + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "chunked-then-identity": b"POST / HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "chunked-on-http10": b"POST / HTTP/1.0\r\n"
    + H
    + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\n" + H + b"X-Folded: one\r\n  two\r\n\r\n",
    "bad-chunk-size": b"POST / HTTP/1.1\r\n"
    + H
    + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "bare-lf": b"GET / HTTP/1.1\nHost: app.test\nX-A: b\n\n",
    "space-before-colon": b"POST / HTTP/1.1\r\n" + H + b"Content-Length : 5\r\n\r\nhello",
}


@pytest.mark.parametrize("shape", sorted(SMUGGLING))
def test_smuggling_shape_is_refused_before_the_server(target, shape):
    server, port = target
    status, client = refused(port, SMUGGLING[shape])
    assert status == 400
    assert client.closed_within(3), "the connection stayed open after a 400"
    client.close()
    still_serves(port)
    # The one request the server saw is the well-formed one above.
    assert [r.head.target for r in server.requests] == [b"/healthy"]
    assert server.accepted == 1


def test_bad_chunk_after_the_head_was_forwarded_aborts_the_server_side(target):
    server, port = target
    client = Stream.connect(port)
    client.send(
        b"POST /upload HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
    )
    gevent.sleep(0.3)  # the head and the first chunk are on their way to the server by now
    client.send(b"zz\r\nworld\r\n0\r\n\r\n")
    head = client.head()
    assert head is not None and head.status == 400
    assert client.closed_within(3)
    deadline = time.monotonic() + 3
    while not server.errors and time.monotonic() < deadline:
        gevent.sleep(0.05)
    # The server got a request cut short and a closed connection, never a complete request.
    assert server.requests == []
    assert server.errors, "the proxy left the server connection open"


def test_oversized_head_gets_431(target):
    _server, port = target
    status, client = refused(
        port, b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n"
    )
    assert status == 431
    assert client.closed_within(3)
    status, client = refused(
        port,
        b"GET / HTTP/1.1\r\n"
        + H
        + b"".join(b"X-Many-%d: %s\r\n" % (i, b"b" * 1000) for i in range(90))
        + b"\r\n",
    )
    assert status == 431
    still_serves(port)


def test_more_than_100_headers_get_431(target):
    server, port = target
    status, client = refused(
        port,
        b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-H%d: v\r\n" % i for i in range(101)) + b"\r\n",
    )
    assert status == 431
    assert client.closed_within(3)
    still_serves(port)
    assert server.accepted == 1


def test_slowloris_is_cut_off_after_the_header_timeout(target):
    server, port = target
    client = Stream.connect(port)
    client.send(b"GET /slow HTTP/1.1\r\n" + H)
    started = time.monotonic()
    head = None
    for i in range(25):
        try:
            client.send(b"X-Drip-%d: %s\r\n" % (i, b"x" * 10))
        except OSError:
            break
        client.sock.settimeout(0.2)
        try:
            head = client.head()
            break
        except TimeoutError:
            continue
    client.sock.settimeout(5)
    if head is None:
        head = client.head()
    took = time.monotonic() - started
    assert head is not None and head.status == 408
    assert 0.8 < took < 3, took
    assert client.closed_within(3)
    still_serves(port)
    assert [r.head.target for r in server.requests] == [b"/healthy"]


def test_silent_client_with_half_a_head_gets_408(target):
    _server, port = target
    client = Stream.connect(port)
    started = time.monotonic()
    client.send(b"GET /half HTTP/1.1\r\n" + H)
    head = client.head()
    assert head is not None and head.status == 408
    assert 0.8 < time.monotonic() - started < 3
    still_serves(port)
