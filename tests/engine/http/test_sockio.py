"""The fast sender: one send when the data fits, gevent's loop when it does not, TLS untouched."""

import socket
import ssl
import tempfile

import gevent
import pytest
from gevent import socket as gsocket

from passerelle.engine.http.sockio import send_all, sender
from passerelle.engine.tls.certificates import make_self_signed


def _pair() -> tuple[gsocket.socket, gsocket.socket]:
    return gsocket.socketpair()


def _drain(sock: gsocket.socket, size: int) -> bytes:
    got = bytearray()
    while len(got) < size:
        data = sock.recv(65536)
        if not data:
            break
        got += data
    return bytes(got)


def test_small_message_arrives_whole() -> None:
    left, right = _pair()
    send = sender(left)
    assert send != left.sendall  # the one-call path, not gevent's loop
    send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert _drain(right, 40) == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_message_larger_than_the_socket_buffer_waits_and_completes() -> None:
    left, right = _pair()
    left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    payload = bytes(range(256)) * 40000  # ~10 MB: many partial sends
    reader = gevent.spawn(_drain, right, len(payload))
    sender(left)(payload)
    assert reader.get(timeout=10) == payload


def test_peer_gone_raises_os_error() -> None:
    left, right = _pair()
    right.close()
    send = sender(left)
    with pytest.raises(OSError):
        for _ in range(100):
            send(b"x" * 65536)


def test_tls_socket_keeps_its_own_sendall() -> None:
    cert_pem, key_pem = make_self_signed("localhost", ["localhost"])
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as f:
        f.write(cert_pem + key_pem)
        f.flush()
        server_ctx.load_cert_chain(f.name)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    left, right = _pair()
    received: list[bytes] = []

    def serve() -> None:
        tls = server_ctx.wrap_socket(right, server_side=True)
        received.append(_drain(tls, 5))

    job = gevent.spawn(serve)
    tls_client = client_ctx.wrap_socket(left)
    send = sender(tls_client)
    assert send == tls_client.sendall
    send(b"hello")
    job.get(timeout=10)
    assert received == [b"hello"]


def test_send_all_keeps_nothing_per_socket_and_delivers() -> None:
    left, right = _pair()
    send_all(left, b"ping")
    assert _drain(right, 4) == b"ping"
