"""A stand-in for a booted appliance's management API (HTTPS): /api/v1/health without auth,
/api/v1/ha/pair with Basic auth; it records what it receives."""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from gevent.pywsgi import WSGIServer

from passerelle.engine.tls.certificates import make_self_signed, write_pem_files


class FakeAppliance:
    def __init__(self, address: str, port: int, password: str, pair_status: int = 200) -> None:
        self.address = address
        self.password = password
        self.pair_status = pair_status
        self.requests: list[dict[str, Any]] = []
        self._certs = tempfile.TemporaryDirectory(prefix="fake-appliance-")
        cert_pem, key_pem = make_self_signed("passerelle", [address])
        cert, key = write_pem_files(Path(self._certs.name), "api", cert_pem, key_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self.server = WSGIServer((address, port), self._app, ssl_context=context, log=None)
        self.server.start()
        self.port = self.server.server_port

    def _authorized(self, environ: dict[str, Any]) -> bool:
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user == "admin" and password == self.password

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        method = environ["REQUEST_METHOD"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        record = {"method": method, "path": path, "body": json.loads(body) if body else None}
        record["authorized"] = self._authorized(environ)
        self.requests.append(record)

        def answer(status: str, payload: Any) -> list[bytes]:
            data = json.dumps(payload).encode()
            start_response(
                status,
                [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
            )
            return [data]

        if path == "/api/v1/health" and method == "GET":
            return answer("200 OK", {"status": "ok"})
        if path == "/api/v1/ha/pair" and method == "POST":
            if not record["authorized"]:
                return answer("401 Unauthorized", {"error": "authentication required"})
            if self.pair_status == 404:
                return answer("404 Not Found", {"error": "not found"})
            if self.pair_status == 409:
                return answer("409 Conflict", {"error": "already paired", "field": None})
            return answer("200 OK", {"state": "paired"})
        return answer("404 Not Found", {"error": "not found"})

    def pair_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/api/v1/ha/pair"]

    def stop(self) -> None:
        self.server.stop(timeout=1)
        self._certs.cleanup()


def start_pair(
    addresses: list[str], password: str, pair_status: int = 200
) -> tuple[list[FakeAppliance], int]:
    """Fake appliances on several loopback addresses sharing one free port."""
    for _ in range(20):
        first = FakeAppliance(addresses[0], 0, password, pair_status)
        others = []
        try:
            for address in addresses[1:]:
                others.append(FakeAppliance(address, first.port, password, pair_status))
        except OSError:
            for started in [first, *others]:
                started.stop()
            continue
        return [first, *others], first.port
    raise RuntimeError("no port free on all the loopback addresses")
