"""One health probe of one real server: a TCP connect, or the status line of an HTTP(S) reply.

Everything goes through gevent sockets, so a probe waits in the hub and never blocks it. Literal
IP addresses are connected to directly: routing them through a resolver (as
``socket.create_connection`` does) would send each probe through gevent's resolver thread pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import gevent
from gevent import socket, ssl

if TYPE_CHECKING:  # imported by the supervisor before its workers are forked
    from passerelle.engine.model.config import HealthCheck


_RECV_SIZE = 4096
_HEAD_MAX = 16384  # more than this before the end of an interim head is not a sane HTTP server
_USER_AGENT = "Passerelle-Health/1"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    detail: str


class _BadReply(Exception):
    """The server answered, but not with an HTTP status line we can read."""


_NO_CHECK = ProbeResult(True, "no health check")
_TCP_OK = ProbeResult(True, "tcp connect ok")


def _tls_client_context() -> ssl.SSLContext:
    # Real servers commonly carry internal-CA or self-signed certificates: the check proves that
    # the service answers, not who it is (re-encryption decides trust on the data path).
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


_TLS = _tls_client_context()


def probe(address: str, port: int, check: HealthCheck) -> ProbeResult:
    """Probe ``address`` on ``check.port`` (alternate check port) or else ``port``.

    The whole probe, TLS handshake included, is bounded by ``check.timeout``. Never raises
    (except when the calling greenlet is killed): every failure is ``ok=False`` with a short
    detail.
    """
    if check.type == "none":
        return _NO_CHECK
    sock: socket.socket | None = None
    timer = gevent.Timeout.start_new(check.timeout)
    try:
        sock = _connect(address, check.port or port)
        if check.type == "tcp":
            return _TCP_OK
        if check.type == "https":
            sock = _TLS.wrap_socket(sock, server_hostname=_sni(check.host))
        return _http(sock, address, check)
    except gevent.Timeout as exc:
        if exc is not timer:
            raise
        return ProbeResult(False, f"timeout after {check.timeout} s")
    except ssl.SSLError as exc:
        reason = (exc.reason or str(exc)).replace("_", " ").lower()
        return ProbeResult(False, f"TLS error: {reason}")
    except OSError as exc:
        return ProbeResult(False, (exc.strerror or str(exc) or type(exc).__name__).lower())
    except _BadReply as exc:
        return ProbeResult(False, str(exc))
    except Exception as exc:  # a probe's bug must cost one check, not the checking greenlet
        return ProbeResult(False, f"probe error: {exc!r}")
    finally:
        timer.close()
        if sock is not None:
            sock.close()


def _connect(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _sni(host: str | None) -> str | None:
    """The TLS server name for a Host value: without a port, and none for IP literals."""
    if not host or host.startswith("["):
        return None
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        host = name
    return None if _is_ip(host) else host


def _is_ip(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return True
    return False


def _request(address: str, check: HealthCheck) -> bytes:
    host = check.host or (f"[{address}]" if ":" in address else address)
    if any(c in host for c in " \t\r\n"):
        raise _BadReply("invalid Host for the health check")  # would split the request head
    try:
        return (
            f"{check.method} {check.path} HTTP/1.1\r\nHost: {host}\r\n"
            f"User-Agent: {_USER_AGENT}\r\nConnection: close\r\n\r\n"
        ).encode("ascii")
    except UnicodeEncodeError:
        raise _BadReply("Host or path of the health check is not ASCII") from None


def _http(sock: socket.socket, address: str, check: HealthCheck) -> ProbeResult:
    sock.sendall(_request(address, check))
    buffer = b""
    while True:
        buffer, line_end = _read_until(sock, buffer, b"\n")
        status = _status(buffer[:line_end])
        # Interim replies (100 Continue, 103 Early Hints) precede the real answer: skip their head.
        if status >= 200 or status == 101 or status in check.expected_status:
            break
        buffer, head_end = _read_until(sock, buffer, b"\r\n\r\n")
        buffer = buffer[head_end + 4 :]
    if status in check.expected_status:
        return ProbeResult(True, f"HTTP {status}")
    return ProbeResult(False, f"HTTP {status} not in {check.expected_status}")


def _read_until(sock: socket.socket, buffer: bytes, marker: bytes) -> tuple[bytes, int]:
    """Receive until ``marker`` is in ``buffer``; returns the buffer and the marker's index."""
    while (index := buffer.find(marker)) < 0:
        if len(buffer) > _HEAD_MAX:
            raise _BadReply("reply head too long")
        chunk = sock.recv(_RECV_SIZE)
        if not chunk:
            raise _BadReply("connection closed before the status line")
        buffer += chunk
    return buffer, index


def _status(line: bytes) -> int:
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not _is_code(parts[1]):
        raise _BadReply("not an HTTP reply")
    return int(parts[1])


def _is_code(token: bytes) -> bool:
    return len(token) == 3 and token.isdigit()
