"""Real TLS peers for the TLS tests: a threaded loopback server and the openssl/curl clients."""

from __future__ import annotations

import queue
import re
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509

from passerelle.engine.model import Certificate
from passerelle.engine.tls.certificates import Authority
from passerelle.engine.tls.contexts import chosen_certificate, server_name

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"


@dataclass
class Handshake:
    """What the server saw of one connection."""

    ok: bool
    error: str = ""
    certificate: str | None = None
    server_name: str | None = None
    version: str | None = None
    cipher: str | None = None
    alpn: str | None = None


@dataclass
class TLSServer:
    """Accepts TLS connections on 127.0.0.1 one by one and answers a tiny HTTP response."""

    context: ssl.SSLContext
    listener: socket.socket = field(init=False)
    seen: queue.Queue[Handshake] = field(init=False, default_factory=queue.Queue)
    _stop: threading.Event = field(init=False, default_factory=threading.Event)
    _thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def next_handshake(self, timeout: float = 3.0) -> Handshake:
        return self.seen.get(timeout=timeout)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)
        self.listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(2.0)
            try:
                self.seen.put(self._handle(conn))
            finally:
                conn.close()

    def _handle(self, conn: socket.socket) -> Handshake:
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            return Handshake(ok=False, error=str(exc))
        seen = Handshake(
            ok=True,
            certificate=chosen_certificate(tls),
            server_name=server_name(tls),
            version=tls.version(),
            cipher=(tls.cipher() or ("",))[0],
            alpn=tls.selected_alpn_protocol(),
        )
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                request += chunk
            if request:
                tls.sendall(RESPONSE)
            tls.close()
        except (ssl.SSLError, OSError):
            pass  # clients that only handshake hang up without close_notify
        return seen


@pytest.fixture
def tls_server() -> Iterator[Callable[[ssl.SSLContext], TLSServer]]:
    servers: list[TLSServer] = []

    def start(context: ssl.SSLContext) -> TLSServer:
        server = TLSServer(context)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@dataclass
class ClientResult:
    connected: bool
    version: str | None
    cipher: str | None
    certificates: list[x509.Certificate]
    alpn: str | None
    output: str

    @property
    def leaf(self) -> x509.Certificate:
        return self.certificates[0]

    def dns_names(self) -> list[str]:
        san = self.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        return san.value.get_values_for_type(x509.DNSName)


_NEW_SESSION = re.compile(r"^New, (\S+), Cipher is (\S+)$", re.M)
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
_ALPN = re.compile(r"^ALPN protocol: (\S+)$", re.M)


def run_s_client(port: int, *args: str, servername: str | None = None) -> ClientResult:
    """One handshake with the openssl CLI; servername None sends no SNI at all."""
    sni = ["-servername", servername] if servername else ["-noservername"]
    proc = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-showcerts", *sni, *args],
        input=b"",
        capture_output=True,
        timeout=10,
    )
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    session = _NEW_SESSION.search(out)
    connected = bool(session) and session.group(1) != "(NONE)"
    alpn = _ALPN.search(out)
    return ClientResult(
        connected=connected,
        version=session.group(1) if connected else None,
        cipher=session.group(2) if connected else None,
        certificates=[x509.load_pem_x509_certificate(m.encode()) for m in _PEM.findall(out)],
        alpn=alpn.group(1) if alpn else None,
        output=out,
    )


@pytest.fixture
def s_client() -> Callable[..., ClientResult]:
    return run_s_client


@pytest.fixture(scope="session")
def authority() -> Authority:
    return Authority.create("Contoso Test CA")


@pytest.fixture(scope="session")
def ca_file(authority: Authority, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_text(authority.cert_pem)
    return path


@pytest.fixture(scope="session")
def rsa_certificate(authority: Authority) -> Certificate:
    cert_pem, key_pem = authority.issue(
        "legacy.contoso.com", ["legacy.contoso.com"], key_type="rsa-2048"
    )
    return Certificate(name="legacy", cert_pem=cert_pem, key_pem=key_pem)
