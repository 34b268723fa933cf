"""Sample real servers: each answers with its own name and what it saw of the request.

They stand in for Skype for Business front ends and Office Online Server in the demo and in the
tests: plain or TLS HTTP, keep-alive, and an NTLM-like handshake that authenticates the TCP
connection (not the request), which is what makes connection pinning in the proxy necessary.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gevent.pywsgi import WSGIHandler, WSGIServer
from gevent.server import StreamServer

NTLM_CHALLENGE = "TlRMTVNTUAACAAAA"  # a fixed stand-in for a type-2 message


@dataclass
class SampleServer:
    """One sample web server; ``seen`` keeps the requests it served, for tests to inspect."""

    name: str
    address: str
    port: int
    tls: ssl.SSLContext | None = None
    ntlm: bool = False  # require NTLM-style connection authentication
    status: int = 200
    seen: list[dict[str, Any]] = field(default_factory=list)
    _server: WSGIServer | None = None
    # connection (remote port) -> "challenged" or the authenticated user name
    _auth: dict[str, str] = field(default_factory=dict)

    def start(self) -> SampleServer:
        kwargs: dict[str, Any] = {"log": None, "error_log": None}
        if self.tls is not None:
            kwargs["ssl_context"] = self.tls
        self._server = WSGIServer((self.address, self.port), self.app, **kwargs)
        self._server.handler_class = _KeepAliveHandler
        self._server.start()
        self.port = self._server.server_port
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(timeout=1)

    def app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        connection = f"{environ.get('REMOTE_ADDR')}:{environ.get('REMOTE_PORT')}"
        body = environ["wsgi.input"].read()
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        if "CONTENT_TYPE" in environ:
            headers["content-type"] = environ["CONTENT_TYPE"]
        record = {
            "server": self.name,
            "method": environ["REQUEST_METHOD"],
            "path": environ.get("PATH_INFO", ""),
            "query": environ.get("QUERY_STRING", ""),
            "host": environ.get("HTTP_HOST"),
            "tls": self.tls is not None,
            "connection": connection,
            "headers": headers,
            "body_length": len(body),
        }
        status = self.status
        extra: list[tuple[str, str]] = []
        if self.ntlm:
            status, extra, record["user"] = self._ntlm(connection, headers.get("authorization"))
        if status == 200 and environ.get("PATH_INFO", "").startswith("/set-cookie/"):
            extra.append(("Set-Cookie", f"{environ['PATH_INFO'].split('/')[2]}; Path=/"))
        self.seen.append(record)
        payload = json.dumps(record).encode() + b"\n"
        start_response(
            f"{status} {'OK' if status == 200 else 'Status'}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(payload))),
                ("X-Served-By", self.name),
                *extra,
            ],
        )
        return [payload]

    def _ntlm(
        self, connection: str, authorization: str | None
    ) -> tuple[int, list[tuple[str, str]], str | None]:
        state = self._auth.get(connection)
        if authorization and authorization.startswith("NTLM "):
            token = authorization[5:]
            if token.startswith("negotiate"):
                self._auth[connection] = "challenged"
                return 401, [("WWW-Authenticate", f"NTLM {NTLM_CHALLENGE}")], None
            if token.startswith("user:") and state == "challenged":
                user = token[5:]
                self._auth[connection] = user
                return 200, [], user
            return 401, [("WWW-Authenticate", "NTLM")], None
        if state and state != "challenged":
            return 200, [], state  # the connection is authenticated: no header needed
        return 401, [("WWW-Authenticate", "NTLM")], None


class _KeepAliveHandler(WSGIHandler):
    """pywsgi's handler, quiet about clients that just go away."""

    def __init__(self, sock: Any, address: Any, server: Any, rfile: Any = None) -> None:
        # pywsgi writes head and body apart: without this, Nagle and delayed ACK add ~40 ms
        # to every keep-alive response.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().__init__(sock, address, server, rfile)

    def log_error(self, *args: Any) -> None:
        pass


@dataclass
class TcpPort:
    """A listener that accepts and closes: the 5061 SIP/TLS port a health check connects to."""

    address: str
    port: int
    _server: StreamServer | None = None

    def start(self) -> TcpPort:
        self._server = StreamServer((self.address, self.port), lambda sock, _peer: sock.close())
        self._server.start()
        self.port = self._server.server_port
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(timeout=1)
