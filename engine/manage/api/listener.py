"""The management listener: HTTPS only, on the management address, never on a VIP.

Without a certificate of its own the listener makes a self-signed one on first start and keeps
it next to the store, so its fingerprint stays the same across restarts.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import gevent
from gevent.pywsgi import WSGIServer

from passerelle.engine.manage.api.selfsigned import make_in_child
from passerelle.engine.model.config import Config

log = logging.getLogger("passerelle.api")

CERT_NAME = "management"
RETRY_BIND = 5.0
# A connection that stays silent this long (handshake, request or keep-alive) is closed, so idle
# or half-open clients cannot pile up in the engine's supervisor process.
IDLE_TIMEOUT = 60.0
WILDCARDS = ("0.0.0.0", "::", "")
# Any WSGI application: the plane hands over its own, which builds the Flask app on first use.
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def clash(address: str, port: int, config: Config) -> str | None:
    """The virtual service that listens on the management address:port, if any."""
    for vs in config.virtual_services:
        same = address in WILDCARDS or vs.address in WILDCARDS or vs.address == address
        if vs.protocol == "tcp" and port in vs.ports and same:
            return vs.name
    return None


def management_certificate(
    directory: Path, address: str, cert: Path | None = None, key: Path | None = None
) -> tuple[Path, Path]:
    """The certificate and key files to serve: the given ones, or a self-signed pair."""
    if (cert is None) != (key is None):
        raise ValueError("give both the management certificate and its key, or neither")
    if cert is not None and key is not None:
        return cert, key
    cert_path, key_path = directory / f"{CERT_NAME}.crt", directory / f"{CERT_NAME}.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    hostname = socket.gethostname()
    names = [hostname, "localhost"] + ([address] if address not in WILDCARDS else [])
    make_in_child(directory, CERT_NAME, hostname, names)
    log.info("created a self-signed management certificate in %s", cert_path)
    return cert_path, key_path


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


class _HttpsServer(WSGIServer):
    def wrap_socket_and_handle(self, client_socket: socket.socket, address: object) -> object:
        client_socket.settimeout(IDLE_TIMEOUT)
        # Without it a small response waits for the client's delayed ACK (~40 ms per call).
        with contextlib.suppress(OSError):
            client_socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            return super().wrap_socket_and_handle(client_socket, address)
        except OSError as exc:  # ssl.SSLError included: plain HTTP, scanners, dropped clients
            log.debug("management connection from %s: %s", address, exc)
            return None


class ManagementListener:
    """Serves ``app`` over HTTPS; an address that is not up yet is retried, not fatal."""

    def __init__(self, app: WsgiApp, address: str, port: int, context: ssl.SSLContext) -> None:
        self.address = address
        self.port = port
        self.server = _HttpsServer(
            (address, port),
            app,
            ssl_context=context,
            log=None,
            error_log=logging.getLogger("passerelle.api.http"),
        )
        self._retry: gevent.Greenlet | None = None

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"https://{host}:{self.port}"

    def start(self) -> bool:
        """Listen now if possible (True); otherwise keep trying in the background (False)."""
        if self._bind():
            return True
        self._retry = gevent.spawn(self._keep_trying)
        return False

    def _bind(self) -> bool:
        try:
            self.server.start()
        except OSError as exc:
            log.error(
                "management listener %s:%d: %s; retrying every %.0f s",
                self.address,
                self.port,
                exc.strerror or exc,
                RETRY_BIND,
            )
            return False
        self.port = self.server.server_port
        log.info("management API on %s/api/v1/", self.url)
        return True

    def _keep_trying(self) -> None:
        while True:
            gevent.sleep(RETRY_BIND)
            if self._bind():
                return

    def stop(self) -> None:
        if self._retry is not None:
            self._retry.kill()
        if self.server.started:
            self.server.stop(timeout=1)
