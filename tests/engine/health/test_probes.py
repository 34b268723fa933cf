"""Health probes against real sockets on loopback: TCP, HTTP and HTTPS real servers."""

from __future__ import annotations

import contextlib
import datetime
import socket as stdlib_socket
from collections.abc import Callable, Iterator
from pathlib import Path

import gevent
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from gevent import socket, ssl
from gevent.event import Event
from gevent.server import StreamServer

from passerelle.engine.health.probes import ProbeResult, probe
from passerelle.engine.model.config import HealthCheck

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
Handler = Callable[[socket.socket], None]


def check(**fields: object) -> HealthCheck:
    fields.setdefault("timeout", 1.0)
    fields.setdefault("interval", 2.0)
    return HealthCheck(**fields)


def read_head(sock: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return head


class Servers:
    """Real servers on loopback ports; remembers every request head they receive."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.connections = 0
        self.released = Event()  # hanging handlers end when the test does
        self._servers: list[StreamServer] = []

    def start(
        self, handle: Handler, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
    ) -> int:
        def serve(sock: socket.socket, _peer: object) -> None:
            self.connections += 1
            with contextlib.suppress(OSError):  # the probe may go away first, as it may
                handle(tls.wrap_socket(sock, server_side=True) if tls else sock)

        server = StreamServer((host, 0), serve)
        server.start()
        self._servers.append(server)
        return server.server_port

    def replying(self, *chunks: bytes, keep_open: bool = False, read: bool = True) -> Handler:
        def handle(sock: socket.socket) -> None:
            if read:
                self.heads.append(read_head(sock))
            for i, chunk in enumerate(chunks):
                if i:
                    gevent.sleep(0.02)  # separate segments: the reader must reassemble
                sock.sendall(chunk)
            if keep_open:
                self.released.wait()

        return handle

    def answering(self, status: int) -> Handler:
        return self.replying(f"HTTP/1.1 {status} Whatever\r\nContent-Length: 0\r\n\r\n".encode())

    def silent(self, read: bool = True) -> Handler:
        def handle(sock: socket.socket) -> None:
            if read:
                self.heads.append(read_head(sock))
            self.released.wait()

        return handle

    def close(self) -> None:
        self.released.set()
        for server in self._servers:
            server.stop(timeout=1)


@pytest.fixture
def servers() -> Iterator[Servers]:
    s = Servers()
    yield s
    s.close()


@pytest.fixture
def refused_port() -> Iterator[int]:
    # Bound but not listening: the kernel answers SYNs with RST, and no one else can take it.
    sock = stdlib_socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


# --- none / tcp ---------------------------------------------------------------------------


def test_none_is_always_up_without_connecting(refused_port: int) -> None:
    assert probe("127.0.0.1", refused_port, check(type="none")) == ProbeResult(
        True, "no health check"
    )


def test_tcp_up_against_a_listening_socket() -> None:
    listener = stdlib_socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        result = probe("127.0.0.1", listener.getsockname()[1], check(type="tcp"))
    finally:
        listener.close()
    assert result == ProbeResult(True, "tcp connect ok")


def test_tcp_down_when_refused(refused_port: int) -> None:
    assert probe("127.0.0.1", refused_port, check(type="tcp")) == ProbeResult(
        False, "connection refused"
    )


def test_tcp_down_on_connect_timeout() -> None:
    # A listener whose accept queue is full drops further SYNs: connect never completes.
    listener = stdlib_socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = stdlib_socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        result = probe("127.0.0.1", port, check(type="tcp", timeout=0.3))
    finally:
        for sock in [*fillers, listener]:
            sock.close()
    assert result == ProbeResult(False, "timeout after 0.3 s")


def test_tcp_uses_the_alternate_check_port(servers: Servers, refused_port: int) -> None:
    check_port = servers.start(servers.silent(read=False))
    assert probe("127.0.0.1", refused_port, check(type="tcp", port=check_port)).ok
    with gevent.Timeout(2):
        while servers.connections < 1:  # the server's accept runs after the kernel's handshake
            gevent.sleep(0.01)


# --- http ---------------------------------------------------------------------------------


def test_http_200_is_up(servers: Servers) -> None:
    port = servers.start(servers.answering(200))
    assert probe("127.0.0.1", port, check(type="http")) == ProbeResult(True, "HTTP 200")


def test_http_503_is_down_with_the_status(servers: Servers) -> None:
    port = servers.start(servers.answering(503))
    assert probe("127.0.0.1", port, check(type="http")) == ProbeResult(
        False, "HTTP 503 not in [200, 301, 302, 401]"
    )


@pytest.mark.parametrize("status", [301, 302, 401])
def test_http_default_expected_statuses_are_up(servers: Servers, status: int) -> None:
    port = servers.start(servers.answering(status))
    assert probe("127.0.0.1", port, check(type="http")) == ProbeResult(True, f"HTTP {status}")


def test_http_404_is_down_by_default(servers: Servers) -> None:
    port = servers.start(servers.answering(404))
    assert not probe("127.0.0.1", port, check(type="http")).ok


def test_http_expected_status_override(servers: Servers) -> None:
    port_503 = servers.start(servers.answering(503))
    port_200 = servers.start(servers.answering(200))
    wanted = check(type="http", expected_status=[503, 204])
    assert probe("127.0.0.1", port_503, wanted) == ProbeResult(True, "HTTP 503")
    assert probe("127.0.0.1", port_200, wanted) == ProbeResult(False, "HTTP 200 not in [503, 204]")


def test_http_sends_the_configured_request(servers: Servers) -> None:
    port = servers.start(servers.answering(200))
    wanted = check(type="http", method="HEAD", path="/health/ready?full=1", host="app.example")
    assert probe("127.0.0.1", port, wanted).ok
    (head,) = servers.heads
    assert head.split(b"\r\n", 1)[0] == b"HEAD /health/ready?full=1 HTTP/1.1"
    assert header(head, b"Host") == b"app.example"
    assert header(head, b"User-Agent") == b"Passerelle-Health/1"
    assert header(head, b"Connection") == b"close"


def test_http_host_defaults_to_the_address(servers: Servers) -> None:
    port = servers.start(servers.answering(200), host="127.0.0.2")
    assert probe("127.0.0.2", port, check(type="http")).ok
    (head,) = servers.heads
    assert head.startswith(b"GET / HTTP/1.1\r\n")
    assert header(head, b"Host") == b"127.0.0.2"


def test_http_ipv6_host_is_bracketed(servers: Servers) -> None:
    try:
        port = servers.start(servers.answering(200), host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    assert probe("::1", port, check(type="http")).ok
    assert header(servers.heads[0], b"Host") == b"[::1]"


def test_http_alternate_port_when_the_service_port_is_closed(
    servers: Servers, refused_port: int
) -> None:
    # Skype for Business: a 443 service whose health is checked on 5061.
    check_port = servers.start(servers.answering(200))
    assert not probe("127.0.0.1", refused_port, check(type="http")).ok
    assert probe("127.0.0.1", refused_port, check(type="http", port=check_port)) == ProbeResult(
        True, "HTTP 200"
    )


def test_http_timeout_when_the_server_never_answers(servers: Servers) -> None:
    port = servers.start(servers.silent())
    assert probe("127.0.0.1", port, check(type="http", timeout=0.2)) == ProbeResult(
        False, "timeout after 0.2 s"
    )
    assert len(servers.heads) == 1  # the request did arrive: it is the reply that never came


def test_http_reads_only_the_status_line(servers: Servers) -> None:
    # The server sends a status line and part of a body, then keeps the connection open:
    # waiting for more than the status line would end in a timeout.
    port = servers.start(
        servers.replying(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial", keep_open=True
        )
    )
    assert probe("127.0.0.1", port, check(type="http", timeout=1.0)) == ProbeResult(
        True, "HTTP 200"
    )


def test_http_status_line_split_across_segments(servers: Servers) -> None:
    port = servers.start(servers.replying(b"HTT", b"P/1.0 30", b"2 Found\r", b"\n\r\n"))
    assert probe("127.0.0.1", port, check(type="http")) == ProbeResult(True, "HTTP 302")


def test_http_interim_replies_are_skipped(servers: Servers) -> None:
    port = servers.start(
        servers.replying(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
            b"HTTP/1.1 503 Service Unavailable\r\n\r\n",
        )
    )
    assert probe("127.0.0.1", port, check(type="http")) == ProbeResult(
        False, "HTTP 503 not in [200, 301, 302, 401]"
    )


def test_http_closed_without_a_reply(servers: Servers) -> None:
    port = servers.start(servers.replying())
    assert probe("127.0.0.1", port, check(type="http")) == ProbeResult(
        False, "connection closed before the status line"
    )


@pytest.mark.parametrize("reply", [b"SSH-2.0-OpenSSH_9.6\r\n", b"HTTP/1.1 2000 OK\r\n\r\n"])
def test_http_garbage_reply(servers: Servers, reply: bytes) -> None:
    port = servers.start(servers.replying(reply))
    assert probe("127.0.0.1", port, check(type="http")) == ProbeResult(False, "not an HTTP reply")


def test_http_refused(refused_port: int) -> None:
    assert probe("127.0.0.1", refused_port, check(type="http")) == ProbeResult(
        False, "connection refused"
    )


def test_http_host_that_would_split_the_request_is_refused(servers: Servers) -> None:
    port = servers.start(servers.answering(200))
    # The model refuses such a host; the probe must hold even if one slipped past it.
    hostile = HealthCheck.model_construct(
        **{**check(type="http").model_dump(), "host": "a.example\r\nX-Evil: 1"}
    )
    result = probe("127.0.0.1", port, hostile)
    assert not result.ok
    assert servers.heads == []


def test_probe_waits_in_the_hub(servers: Servers) -> None:
    # While a probe waits on a silent server, other greenlets keep running.
    port = servers.start(servers.silent())
    ticks: list[int] = []

    def tick() -> None:
        while True:
            ticks.append(1)
            gevent.sleep(0.01)

    ticker = gevent.spawn(tick)
    try:
        assert not probe("127.0.0.1", port, check(type="http", timeout=0.3)).ok
    finally:
        ticker.kill()
    assert len(ticks) >= 5


# --- https --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "real-server.internal")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> tuple[ssl.SSLContext, list[str | None]]:
    """A server TLS context that records the SNI name of every handshake."""
    names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)
    return context, names


def test_https_up_with_a_self_signed_certificate(
    servers: Servers, tls_server: tuple[ssl.SSLContext, list[str | None]]
) -> None:
    context, names = tls_server
    port = servers.start(servers.answering(200), tls=context)
    assert probe("127.0.0.1", port, check(type="https")) == ProbeResult(True, "HTTP 200")
    assert names == [None]  # no SNI for a bare IP address
    assert header(servers.heads[0], b"Host") == b"127.0.0.1"


def test_https_sni_is_the_check_host(
    servers: Servers, tls_server: tuple[ssl.SSLContext, list[str | None]]
) -> None:
    context, names = tls_server
    port = servers.start(servers.answering(401), tls=context)
    wanted = check(type="https", host="lync-pool.corp.example:4443", path="/meet/")
    assert probe("127.0.0.1", port, wanted) == ProbeResult(True, "HTTP 401")
    assert names == ["lync-pool.corp.example"]
    assert header(servers.heads[0], b"Host") == b"lync-pool.corp.example:4443"


def test_https_status_is_checked(
    servers: Servers, tls_server: tuple[ssl.SSLContext, list[str | None]]
) -> None:
    context, _ = tls_server
    port = servers.start(servers.answering(500), tls=context)
    assert probe("127.0.0.1", port, check(type="https")) == ProbeResult(
        False, "HTTP 500 not in [200, 301, 302, 401]"
    )


def test_https_against_a_plain_http_server(servers: Servers) -> None:
    # Speaks first, as a plain server answering garbage does: the client sees no TLS record.
    port = servers.start(servers.replying(b"HTTP/1.1 400 Bad Request\r\n\r\n", read=False))
    result = probe("127.0.0.1", port, check(type="https"))
    assert not result.ok
    assert result.detail.startswith("TLS error: ")


def test_https_handshake_counts_in_the_timeout(servers: Servers) -> None:
    port = servers.start(servers.silent(read=False))  # accepts TCP, never says a TLS word
    assert probe("127.0.0.1", port, check(type="https", timeout=0.2)) == ProbeResult(
        False, "timeout after 0.2 s"
    )
