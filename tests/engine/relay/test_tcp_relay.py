"""TCP relay over real loopback sockets: integrity, half-close, idle timeout, resets."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import os
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

import gevent
import gevent.event
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from gevent import socket as gsocket
from gevent import ssl as gssl
from gevent.server import StreamServer

from passerelle.engine.relay import splice, tcp
from passerelle.engine.relay.tally import ByteTally

from support.held_counts import loop_flushed

PAYLOAD_SIZE = 50 * 1024 * 1024
Address = tuple[str, int]
Handler = Callable[[gsocket.socket], None]


def _listener(host: str = "127.0.0.1") -> gsocket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = gsocket.socket(family, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen(16)
    return sock


def _echo(conn: gsocket.socket) -> None:
    buffer = bytearray(65536)
    view = memoryview(buffer)
    while n := conn.recv_into(buffer):
        conn.sendall(view[:n])
    conn.shutdown(socket.SHUT_WR)
    conn.close()


@pytest.fixture
def backend():
    """Start a real server running ``handler`` per connection; returns its address."""
    servers: list[StreamServer] = []

    def start(handler: Handler) -> Address:
        server = StreamServer(_listener(), lambda conn, _addr: handler(conn))
        server.start()
        servers.append(server)
        return server.address[:2]

    yield start
    for server in servers:
        server.stop(timeout=1)


class Proxy:
    """Accepts one client and relays it to ``target``; ``result`` holds relay()'s return."""

    def __init__(
        self,
        target: Address,
        idle_timeout: float = 5.0,
        zero_copy: bool = True,
        wrap_client: Callable[[gsocket.socket], gsocket.socket] | None = None,
    ) -> None:
        self.listener = _listener()
        self.address: Address = self.listener.getsockname()[:2]
        self.cells = [0, 0, 0, 0]  # bytes delivered up (twice), down (twice)
        self.tally = ByteTally(loop_flushed(self.cells), (0, 1), (2, 3))
        self.used_splice: bool | None = None
        self._target = target
        self._idle_timeout = idle_timeout
        self._zero_copy = zero_copy
        self._wrap_client = wrap_client
        self.greenlet = gevent.spawn(self._serve)

    def _serve(self) -> tuple[int, int]:
        client, _ = self.listener.accept()
        self.listener.close()
        if self._wrap_client is not None:
            client = self._wrap_client(client)
        server = tcp.connect(self._target[0], self._target[1], timeout=2.0)
        self.used_splice = self._zero_copy and tcp.can_splice(client, server)
        return tcp.relay(client, server, self._idle_timeout, self.tally, zero_copy=self._zero_copy)

    def result(self, timeout: float = 10.0) -> tuple[int, int]:
        return self.greenlet.get(timeout=timeout)


def _exchange(sock: gsocket.socket, payload: bytes) -> tuple[int, str]:
    """Send ``payload`` while reading the echo back; returns (bytes read, sha256)."""

    def send() -> None:
        view = memoryview(payload)
        for offset in range(0, len(view), 1 << 20):
            sock.sendall(view[offset : offset + (1 << 20)])

    sender = gevent.spawn(send)
    digest = hashlib.sha256()
    buffer = bytearray(1 << 18)
    view = memoryview(buffer)
    received = 0
    while received < len(payload):
        n = sock.recv_into(buffer)
        if not n:
            break
        digest.update(view[:n])
        received += n
    sender.get(timeout=10)
    return received, digest.hexdigest()


@pytest.fixture(scope="module")
def payload() -> bytes:
    return os.urandom(PAYLOAD_SIZE)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _report_rate(label: str, started: float) -> None:
    seconds = time.perf_counter() - started
    print(f"{label}: 2 x {PAYLOAD_SIZE >> 20} MB in {seconds:.2f} s")


@pytest.mark.parametrize("zero_copy", [True, False], ids=["splice", "copy"])
def test_relays_50mb_both_ways_intact(backend, payload: bytes, zero_copy: bool) -> None:
    proxy = Proxy(backend(_echo), zero_copy=zero_copy)
    client = gsocket.create_connection(proxy.address)
    started = time.perf_counter()
    received, digest = _exchange(client, payload)
    _report_rate("splice" if zero_copy else "copy", started)
    client.close()

    assert received == PAYLOAD_SIZE
    assert digest == hashlib.sha256(payload).hexdigest()
    assert proxy.result() == (PAYLOAD_SIZE, PAYLOAD_SIZE)
    assert proxy.cells == [PAYLOAD_SIZE] * 4
    assert proxy.used_splice is zero_copy


def test_tls_client_uses_copy_loop_and_stays_intact(
    backend, payload: bytes, tls_files: tuple[Path, Path]
) -> None:
    cert_path, key_path = tls_files
    server_context = gssl.SSLContext(gssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_path, key_path)
    client_context = gssl.SSLContext(gssl.PROTOCOL_TLS_CLIENT)
    client_context.load_verify_locations(cert_path)

    proxy = Proxy(
        backend(_echo),
        wrap_client=lambda sock: server_context.wrap_socket(sock, server_side=True),
    )
    client = client_context.wrap_socket(
        gsocket.create_connection(proxy.address), server_hostname="127.0.0.1"
    )
    started = time.perf_counter()
    received, digest = _exchange(client, payload)
    _report_rate("tls copy", started)
    client.close()

    assert received == PAYLOAD_SIZE
    assert digest == hashlib.sha256(payload).hexdigest()
    assert proxy.result() == (PAYLOAD_SIZE, PAYLOAD_SIZE)
    assert proxy.cells == [PAYLOAD_SIZE] * 4
    assert proxy.used_splice is False


def _read_to_eof(sock: gsocket.socket, timeout: float = 5.0) -> bytes:
    chunks = []
    with gevent.Timeout(timeout):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("zero_copy", [True, False], ids=["splice", "copy"])
def test_half_close_lets_the_server_answer(backend, zero_copy: bool) -> None:
    request = os.urandom(300_000)
    reply_prefix = b"got "

    def answer_after_eof(conn: gsocket.socket) -> None:
        received = len(_read_to_eof(conn))
        # The reply is sent only after the client's EOF went through the relay.
        conn.sendall(reply_prefix + str(received).encode() + b"\n" + request)
        conn.close()

    proxy = Proxy(backend(answer_after_eof), zero_copy=zero_copy)
    client = gsocket.create_connection(proxy.address)
    client.sendall(request)
    client.shutdown(socket.SHUT_WR)
    reply = _read_to_eof(client)
    client.close()

    expected = reply_prefix + str(len(request)).encode() + b"\n" + request
    assert reply == expected
    assert proxy.result() == (len(request), len(expected))


@pytest.mark.parametrize("zero_copy", [True, False], ids=["splice", "copy"])
def test_idle_timeout_closes_a_quiet_connection(backend, zero_copy: bool) -> None:
    def stay_quiet(conn: gsocket.socket) -> None:
        _read_to_eof(conn)
        conn.close()

    proxy = Proxy(backend(stay_quiet), idle_timeout=0.3, zero_copy=zero_copy)
    client = gsocket.create_connection(proxy.address)
    started = time.monotonic()
    assert _read_to_eof(client, timeout=3.0) == b""
    elapsed = time.monotonic() - started
    client.close()

    assert elapsed >= 0.25
    assert proxy.result(timeout=3.0) == (0, 0)


@pytest.mark.parametrize("zero_copy", [True, False], ids=["splice", "copy"])
def test_one_way_trickle_keeps_the_connection_alive(backend, zero_copy: bool) -> None:
    def trickle(conn: gsocket.socket) -> None:
        for _ in range(10):
            conn.sendall(b"x")
            gevent.sleep(0.1)
        conn.close()

    proxy = Proxy(backend(trickle), idle_timeout=0.3, zero_copy=zero_copy)
    client = gsocket.create_connection(proxy.address)
    # 1 s of server-to-client bytes, 3x longer than the idle timeout: nothing may be cut.
    assert _read_to_eof(client, timeout=5.0) == b"x" * 10
    client.close()
    assert proxy.result() == (0, 10)


def _reset(conn: gsocket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


@pytest.mark.parametrize("zero_copy", [True, False], ids=["splice", "copy"])
def test_server_reset_closes_the_client_side(
    backend, capfd: pytest.CaptureFixture[str], zero_copy: bool
) -> None:
    def reset_after_first_bytes(conn: gsocket.socket) -> None:
        conn.recv(1)
        _reset(conn)

    proxy = Proxy(backend(reset_after_first_bytes), idle_timeout=60.0, zero_copy=zero_copy)
    client = gsocket.create_connection(proxy.address)
    client.sendall(b"hello")
    with pytest.raises(ConnectionResetError):
        # The relay passes the abort on as a reset, not as an end-of-stream that a client
        # could take for a complete response.
        _read_to_eof(client, timeout=3.0)
    client.close()

    _up, down = proxy.result(timeout=3.0)
    assert down == 0
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("zero_copy", [True, False], ids=["splice", "copy"])
def test_client_reset_closes_the_server_side(backend, zero_copy: bool) -> None:
    server_saw = gevent.event.AsyncResult()

    def wait_for_the_end(conn: gsocket.socket) -> None:
        try:
            server_saw.set(_read_to_eof(conn))
        except ConnectionResetError as exc:
            server_saw.set(exc)
        conn.close()

    proxy = Proxy(backend(wait_for_the_end), idle_timeout=60.0, zero_copy=zero_copy)
    client = gsocket.create_connection(proxy.address)
    client.sendall(b"abc")
    gevent.sleep(0.1)
    _reset(client)

    outcome = server_saw.get(timeout=3.0)
    assert isinstance(outcome, ConnectionResetError)
    assert proxy.result(timeout=3.0)[0] == 3


def test_killing_the_relay_closes_both_sides(backend) -> None:
    server_saw = gevent.event.AsyncResult()

    def wait_for_the_end(conn: gsocket.socket) -> None:
        try:
            server_saw.set(_read_to_eof(conn))
        except ConnectionResetError as exc:
            server_saw.set(exc)
        conn.close()

    proxy = Proxy(backend(wait_for_the_end), idle_timeout=60.0)
    client = gsocket.create_connection(proxy.address)
    client.sendall(b"abc")
    gevent.sleep(0.1)
    proxy.greenlet.kill(timeout=2.0)

    assert proxy.greenlet.dead
    assert isinstance(server_saw.get(timeout=3.0), ConnectionResetError)
    with pytest.raises(ConnectionResetError):
        _read_to_eof(client, timeout=3.0)
    client.close()


def _pipes_in_use() -> int:
    """Pipe descriptors open in this process that are not parked in the pool."""
    fds = Path("/proc/self/fd")
    pipe_fds = 0
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            pipe_fds += os.readlink(fd).startswith("pipe:")
    return pipe_fds - 2 * len(splice._pool)


@pytest.mark.skipif(not splice.AVAILABLE, reason="no os.splice")
def test_quiet_relay_holds_no_pipe(backend) -> None:
    def stay_quiet(conn: gsocket.socket) -> None:
        _read_to_eof(conn)
        conn.close()

    before = _pipes_in_use()
    proxy = Proxy(backend(stay_quiet), idle_timeout=60.0)
    client = gsocket.create_connection(proxy.address)
    client.sendall(b"one request")
    gevent.sleep(0.2)
    assert proxy.cells[:2] == [len(b"one request")] * 2
    assert _pipes_in_use() == before  # both directions idle: their pipes went back
    client.close()
    assert proxy.result() == (len(b"one request"), 0)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("zero_copy", [True, False], ids=["splice", "copy"])
def test_concurrent_relays_stay_separate_and_leak_nothing(backend, zero_copy: bool) -> None:
    echo = backend(_echo)
    # Warm the pipe pool so that pooled pipes are not mistaken for leaks.
    first = Proxy(echo, zero_copy=zero_copy)
    with gsocket.create_connection(first.address) as warm:
        _exchange(warm, b"warm-up")
    first.result()
    before = _open_fds() - 2 * len(splice._pool)

    def one_client(index: int) -> bool:
        payload = os.urandom(100_000 + index)
        proxy = Proxy(echo, zero_copy=zero_copy)
        with gsocket.create_connection(proxy.address) as client:
            received, digest = _exchange(client, payload)
        return (
            received == len(payload)
            and digest == hashlib.sha256(payload).hexdigest()
            and proxy.result() == (len(payload), len(payload))
        )

    clients = [gevent.spawn(one_client, i) for i in range(40)]
    gevent.joinall(clients, timeout=10, raise_error=True)
    assert all(c.value for c in clients)
    gevent.sleep(0.1)  # let the echo server's handlers close their sockets
    assert _open_fds() - 2 * len(splice._pool) == before


@pytest.mark.skipif(not splice.AVAILABLE, reason="no os.splice")
def test_pipes_are_reused_only_when_empty() -> None:
    pipe = splice.acquire()
    assert pipe.size >= 65536
    splice.release(pipe, empty=True)
    assert splice.acquire() is pipe
    splice.release(pipe, empty=False)
    with pytest.raises(OSError):
        os.fstat(pipe.read_fd)
    assert pipe not in splice._pool


def test_connect_sets_nodelay_and_source_address() -> None:
    listener = _listener()
    host, port = listener.getsockname()[:2]
    sock = tcp.connect(host, port, timeout=2.0, source="127.0.0.2")
    accepted, peer = listener.accept()

    assert peer[0] == "127.0.0.2"
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    assert sock.gettimeout() is None
    for s in (sock, accepted, listener):
        s.close()


def test_connect_ipv6_literal() -> None:
    try:
        listener = _listener("::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    port = listener.getsockname()[1]
    sock = tcp.connect("::1", port, timeout=2.0, source="::1")
    accepted, peer = listener.accept()
    assert peer[0] == "::1"
    for s in (sock, accepted, listener):
        s.close()


def test_connect_refused_names_the_destination() -> None:
    listener = _listener()
    host, port = listener.getsockname()[:2]
    listener.close()  # nothing listens on that port any more
    with pytest.raises(ConnectionRefusedError, match=f"{host}:{port}"):
        tcp.connect(host, port, timeout=2.0)


def test_connect_rejects_host_names() -> None:
    with pytest.raises(OSError, match="not a literal IP address"):
        tcp.connect("localhost", 80, timeout=1.0)
