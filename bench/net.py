"""Loopback ports and one-shot HTTP probes (readiness, which back end answered)."""

from __future__ import annotations

import socket
import time

from passerelle.testing.ports import LOOPBACK, free_port

__all__ = ["LOOPBACK", "free_port", "http_get", "wait_http", "wait_listening"]


def http_get(port: int, path: str = "/", host: str = "bench.test", timeout: float = 2.0) -> bytes:
    """The body of one plain-HTTP request on a new connection (``Connection: close``)."""
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode("ascii")
        )
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    response = b"".join(chunks)
    head, _, body = response.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"port {port}: {head[:80]!r}")
    return body


def wait_http(port: int, timeout: float = 20.0, path: str = "/") -> None:
    """Until ``port`` answers 200; a proxy counts as started only then."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            http_get(port, path)
            return
        except OSError as exc:
            last = exc
            time.sleep(0.05)
    raise TimeoutError(f"port {port} never answered 200: {last}")


def wait_listening(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1):
                return
        except OSError as exc:
            last = exc
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}: {last}")
