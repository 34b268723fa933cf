"""The management API over real HTTPS: an in-process server for API tests, a client for it,
and `passerelle engine` started with its management listener."""

from __future__ import annotations

import base64
import http.client
import json as json_module
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from email.message import Message as HTTPMessage
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

from passerelle.engine.manage.api.bootstrap import initial_admin
from passerelle.engine.manage.api.plane import ManagementPlane
from passerelle.engine.manage.api.ratelimit import FailureLimiter
from passerelle.engine.manage.store import ConfigStore

from support.engine import EngineProcess, free_port

ADMIN_PASSWORD = "correct-horse-battery"
# Cheap argon2 so tests spend their time on behaviour, not on key stretching.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@dataclass
class Response:
    status_code: int
    headers: HTTPMessage
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json_module.loads(self.content)

    def set_cookies(self) -> dict[str, str]:
        """Set-Cookie headers by cookie name (the whole header value, attributes included)."""
        return {v.split("=", 1)[0]: v for v in self.headers.get_all("Set-Cookie") or []}


class ApiClient:
    """HTTPS to the API, trusting only the listener's own certificate; keeps cookies."""

    def __init__(
        self,
        url: str,
        certificate: Path,
        auth: tuple[str, str] | None = None,
        token: str | None = None,
    ) -> None:
        self.url = url
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "", parts.port or 443
        # Made after gevent patched ssl (tests/conftest.py), so it is gevent-friendly.
        self.tls = ssl.create_default_context(cafile=str(certificate))
        self.headers: dict[str, str] = {}
        self.cookies: dict[str, str] = {}
        if auth is not None:
            pair = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self.headers["Authorization"] = f"Basic {pair}"
        if token is not None:
            self.headers["Authorization"] = f"Bearer {token}"

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> Response:
        sent = {**self.headers, **(headers or {})}
        body = data
        if json is not None:
            body = json_module.dumps(json).encode()
            sent.setdefault("Content-Type", "application/json")
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        connection = http.client.HTTPSConnection(
            self.host, self.port, context=self.tls, timeout=timeout
        )
        try:
            connection.request(method, path, body=body, headers=sent)
            answer = connection.getresponse()
            response = Response(answer.status, answer.headers, answer.read())
        finally:
            connection.close()
        for name, header in response.set_cookies().items():
            value = header.split(";", 1)[0].split("=", 1)[1]
            if value and "max-age=0" not in header.lower():
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        return response

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Response:
        return self.request("DELETE", path, **kwargs)


@dataclass
class LiveApi:
    plane: ManagementPlane
    store: ConfigStore
    directory: Path

    @property
    def url(self) -> str:
        return self.plane.url

    @property
    def certificate(self) -> Path:
        return self.plane.certificate

    def client(
        self, auth: tuple[str, str] | None = ("admin", ADMIN_PASSWORD), token: str | None = None
    ) -> ApiClient:
        return ApiClient(self.url, self.certificate, auth=None if token else auth, token=token)

    def anonymous(self) -> ApiClient:
        return ApiClient(self.url, self.certificate)

    def version(self) -> int:
        return self.store.latest_number()

    def stop(self) -> None:
        self.plane.stop()
        self.store.close()


def start_api(directory: Path, limiter: FailureLimiter | None = None, **providers: Any) -> LiveApi:
    """The API on 127.0.0.1, a port of the kernel's choosing, over a new store in ``directory``."""
    store = ConfigStore(directory / "passerelle.db")
    plane = ManagementPlane(store, "127.0.0.1", 0, hasher=FAST_HASHER, limiter=limiter, **providers)
    initial_admin(plane.users, directory, environ={"PASSERELLE_ADMIN_PASSWORD": ADMIN_PASSWORD})
    assert plane.start()
    return LiveApi(plane, store, directory)


class ManagedEngine(EngineProcess):
    """`passerelle engine` with its HTTPS management API on a free loopback port."""

    def __init__(self, workdir: Path, workers: int = 1) -> None:
        self.management_port = free_port()
        super().__init__(
            workdir, workers, extra_args=("--management", f"127.0.0.1:{self.management_port}")
        )
        self.extra_env = {"PASSERELLE_ADMIN_PASSWORD": ADMIN_PASSWORD}

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.management_port}"

    def start(self, config: dict[str, Any] | None = None) -> ManagedEngine:
        super().start(config)
        self.wait_api()
        return self

    def wait_api(self, timeout: float = 20.0) -> None:
        certificate = self.workdir / "management.crt"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if certificate.exists():
                try:
                    if self.client().get("/api/v1/health", timeout=2).status_code == 200:
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        raise TimeoutError(f"management API did not answer\n{self.tail()}")

    def client(self) -> ApiClient:
        return ApiClient(
            self.api_url, self.workdir / "management.crt", auth=("admin", ADMIN_PASSWORD)
        )
