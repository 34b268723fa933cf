"""Large Content-Length response bodies between plain sockets go server -> kernel pipe -> client
(engine/http/proxy.py `_splice_body`): whole, counted, and the server connection reusable after."""

from __future__ import annotations

import hashlib
import os
import socket

import gevent

from support.http_peers import (
    Message,
    RawServer,
    Stream,
    l7_service,
    response,
    serving,
    sha256,
    shared_deployer,
)

l7 = shared_deployer("splice", workers=1)

BIG = os.urandom(1 << 16) * 48  # 3 MiB: far more than one socket buffer or one pipe holds


def get(stream: Stream, path: str) -> Message:
    stream.send(f"GET {path} HTTP/1.1\r\nHost: app.test\r\n\r\n".encode())
    return stream.response()


def pipes_held(pid: int) -> int:
    """Pipes open in process ``pid``: a spliced body leaves one in the worker's pipe pool."""
    folder = f"/proc/{pid}/fd"
    return sum(os.readlink(f"{folder}/{fd}").startswith("pipe:") for fd in os.listdir(folder))


def test_large_body_is_spliced_whole_and_the_server_connection_is_reused(l7, raw):
    server = raw(serving(lambda m: response(200, BIG if m.head.target == b"/big" else b"small")))
    [port] = l7.deploy(l7_service(server))
    [worker] = l7.engine.status()["workers"]
    client = Stream.connect(port)
    assert get(client, "/small").body == b"small"
    before = pipes_held(worker["pid"])
    for _ in range(3):
        assert sha256(get(client, "/big").body) == sha256(BIG)
        assert get(client, "/small").body == b"small"
    assert pipes_held(worker["pid"]) > before  # the bodies went through a kernel pipe
    assert server.accepted == 1  # the reader ended each body: the connection went back to the pool
    row = l7.engine.server_stats("vs0", f"127.0.0.1:{server.port}")
    assert row["bytes_out"] >= 3 * len(BIG)


def test_body_cut_short_by_the_server_closes_the_client_connection(l7, raw):
    def cut(stream: Stream, server: RawServer, index: int) -> None:
        message = stream.request()
        server.requests.append(message)
        stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BIG))
        stream.send(BIG[: len(BIG) // 3])
        stream.close()

    server = raw(cut)
    [port] = l7.deploy(l7_service(server))
    client = Stream.connect(port)
    client.send(b"GET /big HTTP/1.1\r\nHost: app.test\r\n\r\n")
    head = client.head()
    assert head is not None and head.content_length == len(BIG)
    received = client.until_close()  # the cut is passed on as a close, never as a whole body
    assert len(received) == len(BIG) // 3
    row = l7.engine.server_stats("vs0", f"127.0.0.1:{server.port}")
    assert row["failures"] == 1


def test_client_reading_late_gets_the_whole_body_while_others_are_served(l7, raw):
    huge = BIG * 8  # 24 MiB: more than the socket buffers on both sides of the engine hold
    server = raw(serving(lambda m: response(200, huge if m.head.target == b"/big" else b"small")))
    [port] = l7.deploy(l7_service(server))
    late = socket.create_connection(("127.0.0.1", port))
    late.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    late.sendall(b"GET /big HTTP/1.1\r\nHost: app.test\r\n\r\n")
    gevent.sleep(0.5)  # the engine now waits for room on the late client's socket
    other = Stream.connect(port)
    for _ in range(5):
        assert get(other, "/small").body == b"small"
    late.settimeout(10)
    received = bytearray()
    while (end := received.find(b"\r\n\r\n")) < 0:
        received += late.recv(65536)
    digest = hashlib.sha256(received[end + 4 :])
    left = len(huge) - (len(received) - end - 4)
    buffer = bytearray(1 << 20)
    while left > 0:
        count = late.recv_into(buffer, min(left, len(buffer)))
        assert count, f"closed with {left} bytes of the body missing"
        digest.update(buffer[:count])
        left -= count
    assert digest.hexdigest() == sha256(huge)
    late.close()
