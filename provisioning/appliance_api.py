"""The management API of a freshly deployed appliance: wait for it to serve, call it.

A new appliance presents a self-signed certificate made at first boot, which nothing can
vouch for yet, so the client does not verify it; what it sends is the password this same
deployment just gave the appliance.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

from passerelle.provisioning.errors import DeployError
from passerelle.provisioning.progress import Reporter

API_BASE = "/api/v1"
HEALTH_PATH = "/health"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def basic_header(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: Any  # parsed JSON, or the raw text when the body is not JSON


def api_url(address: str, port: int = 443) -> str:
    """https://ADDRESS[:PORT]/api/v1, with IPv6 addresses bracketed."""
    host = address
    try:
        if ipaddress.ip_address(address).version == 6:
            host = f"[{address}]"
    except ValueError:
        pass
    authority = host if port == 443 else f"{host}:{port}"
    return f"https://{authority}{API_BASE}"


@dataclass(frozen=True)
class RawAnswer:
    status: int
    body: bytes
    content_type: str


class _Connection(http.client.HTTPSConnection):
    """Names ``host`` (SNI, Host header, certificate check) but may connect elsewhere: to a
    loopback port forwarded to the appliance, as the image boot test does."""

    def __init__(
        self, host: str, port: int, context: ssl.SSLContext, timeout: float, connect_port: int
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._connect_port = connect_port

    def connect(self) -> None:
        if self._connect_port == self.port:
            super().connect()
            return
        self.sock = self._context.wrap_socket(  # type: ignore[attr-defined]
            socket.create_connection(("127.0.0.1", self._connect_port), self.timeout),
            server_hostname=self.host,
        )


def https_request(
    host: str,
    port: int,
    method: str,
    path: str,
    *,
    context: ssl.SSLContext,
    timeout: float,
    headers: dict[str, str] | None = None,
    body: Any = None,
    forward_port: int | None = None,
) -> RawAnswer:
    """One request on a connection of its own, ``body`` sent as JSON when given; raises
    OSError/ssl.SSLError when nothing answers. ``forward_port``: connect to that loopback
    port instead, still naming ``host``."""
    sent = dict(headers or {})
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    connection = _Connection(
        host, port, context, timeout, port if forward_port is None else forward_port
    )
    try:
        connection.request(method, path, body=payload, headers=sent)
        response = connection.getresponse()
        return RawAnswer(response.status, response.read(), response.getheader("Content-Type") or "")
    finally:
        connection.close()


def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class ApplianceApi:
    """A small JSON client for one appliance's /api/v1."""

    def __init__(
        self, base_url: str, credentials: Credentials | None = None, timeout: float = 10.0
    ) -> None:
        parsed = http.client.urlsplit(base_url)
        if parsed.scheme != "https" or not parsed.hostname:
            raise DeployError(f"appliance API URL {base_url!r} is not an https:// URL")
        self.base_url = base_url.rstrip("/")
        self.host = parsed.hostname
        self.port = parsed.port or 443
        self.base_path = parsed.path.rstrip("/")
        self.credentials = credentials
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None, auth: bool = True) -> ApiResponse:
        """One request; raises OSError/ssl.SSLError when the appliance cannot be reached."""
        headers = {"Accept": "application/json"}
        if auth and self.credentials is not None:
            headers["Authorization"] = self.credentials.basic_header()
        answer = https_request(
            self.host,
            self.port,
            method,
            self.base_path + path,
            context=_unverified_context(),
            timeout=self.timeout,
            headers=headers,
            body=body,
        )
        text = answer.body.decode("utf-8", "replace")
        try:
            parsed: Any = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return ApiResponse(answer.status, parsed)

    def is_healthy(self) -> tuple[bool, str]:
        """(serving?, what was seen) for GET /api/v1/health, which needs no credentials."""
        try:
            response = self.request("GET", HEALTH_PATH, auth=False)
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            return False, _describe_network_error(exc)
        if response.status == 200:
            return True, "healthy"
        return False, f"health answered HTTP {response.status}"


def _describe_network_error(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "no answer yet"
    return str(exc) or type(exc).__name__


def wait_until_healthy(
    api: ApplianceApi, name: str, reporter: Reporter, timeout: float, interval: float
) -> None:
    deadline = time.monotonic() + timeout
    seen = "not tried yet"
    with reporter.waiting(f"{name}: waiting for the management API {api.base_url}") as status:
        while True:
            healthy, seen = api.is_healthy()
            if healthy:
                return
            if time.monotonic() >= deadline:
                break
            status(seen)
            time.sleep(interval)
    raise DeployError(
        f"{name}: the management API {api.base_url} did not become healthy within "
        f"{timeout:.0f}s (last: {seen}). Check the VM console for the address it shows and "
        "that this machine can reach it on the API port; run the command again to continue."
    )
