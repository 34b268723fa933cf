"""Passerelle: `passerelle engine` (a supervisor and N workers), changed by `passerelle config
apply` or, where a scenario needs it, through its REST API."""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.net import LOOPBACK, free_port
from bench.procs import Managed
from bench.proxies.base import READY_TIMEOUT, Proxy
from bench.services import Certificate, Server, Service
from passerelle.provisioning.appliance_api import https_request

# Services changed through the REST API (the apply scenario): only an engine serving one of them
# runs the management listener (unless --management-api asks for it everywhere), so runs
# without that scenario leave its memory out.
API_SERVICES = frozenset({"apply"})
API_TIMEOUT = 10.0


def _command() -> list[str]:
    script = Path(sys.executable).parent / "passerelle"
    return [str(script)] if script.exists() else [sys.executable, "-m", "passerelle"]


def _optional_listeners_off() -> list[str]:
    """Listeners the engine may offer besides the services (the management API), switched off:
    a benchmark must not collide on their fixed default ports or pay for them."""
    result = subprocess.run(
        [*_command(), "engine", "--help"], capture_output=True, text=True, timeout=30
    )
    return ["--management", "off"] if "--management" in result.stdout else []


def _servers(servers: tuple[Server, ...]) -> list[dict[str, Any]]:
    return [{"address": s.address, "port": s.port} for s in servers]


# No health checks anywhere: HAProxy runs without `check` and nginx has no active checks.
_NO_CHECK = {"type": "none"}


def virtual_service(service: Service, port: int) -> dict[str, Any]:
    vs: dict[str, Any] = {
        "name": service.name,
        "address": LOOPBACK,
        "ports": [port],
        "mode": "http" if service.mode == "http" else "l4",
        "health_check": _NO_CHECK,
    }
    reencrypt = {"verify": False, "sni": "none"} if service.reencrypt else None
    if service.switch_host:
        vs["subvs"] = [
            {
                "name": "app",
                "rules": [{"host": [service.switch_host]}],
                "real_servers": _servers(service.servers),
                "persistence": {"mode": "source_ip"},
                "health_check": _NO_CHECK,
                "reencrypt": reencrypt,
            },
            {
                "name": "other",
                "real_servers": _servers(service.servers[:1]),
                "health_check": _NO_CHECK,
                "reencrypt": reencrypt,
            },
        ]
        vs["default_subvs"] = "other"
    else:
        vs["real_servers"] = _servers(service.servers)
        vs["reencrypt"] = reencrypt
    if service.offload is not None:
        vs["tls"] = {"certificates": [service.offload.name]}
    return vs


def configuration(services: list[Service], ports: dict[str, int]) -> dict[str, Any]:
    certificates: dict[str, Certificate] = {
        s.offload.name: s.offload for s in services if s.offload is not None
    }
    return {
        "certificates": [
            {"name": c.name, "cert_pem": c.cert_pem, "key_pem": c.key_pem}
            for c in certificates.values()
        ],
        "virtual_services": [virtual_service(s, ports[s.name]) for s in services],
    }


class ManagementApi:
    """The engine's HTTPS API as a script uses it: an API token, one new connection per call."""

    def __init__(self, port: int, certificate: Path) -> None:
        self.port = port
        self.certificate = certificate
        self.authorization = ""
        self._tls: ssl.SSLContext | None = None

    def call(self, method: str, path: str, body: Any) -> tuple[int, bytes]:
        if self._tls is None:  # the engine writes its self-signed certificate on start
            self._tls = ssl.create_default_context(cafile=str(self.certificate))
        answer = https_request(
            LOOPBACK,
            self.port,
            method,
            path,
            context=self._tls,
            timeout=API_TIMEOUT,
            headers={"Authorization": self.authorization},
            body=body,
        )
        return answer.status, answer.body

    def login(self, user: str, password: str) -> None:
        """Trade the password for an API token once; every change then uses the token (argon2
        verification is deliberately slow and not what a change costs)."""
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.authorization = f"Basic {basic}"
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                status, body = self.call("POST", "/api/v1/tokens", {"name": "bench"})
                break
            except OSError:  # not listening yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if status != 201:
            raise RuntimeError(f"API token: HTTP {status}: {body[:300]!r}")
        self.authorization = f"Bearer {json.loads(body)['token']}"


class Passerelle(Proxy):
    product = "Passerelle"
    api: ManagementApi | None = None  # set by launch when a service needs the API
    api_password = ""

    @property
    def db(self) -> Path:
        return self.workdir / "db"

    def _write_config(self) -> Path:
        path = self.workdir / "config.json"
        path.write_text(json.dumps(configuration(self.services, self.ports), indent=1))
        return path

    def _management_args(self) -> list[str]:
        if not self.management_api and not any(s.name in API_SERVICES for s in self.services):
            return _optional_listeners_off()
        self.api_password = secrets.token_urlsafe(18)
        password_file = self.workdir / "admin-password"
        password_file.write_text(self.api_password + "\n")
        password_file.chmod(0o600)
        self.api = ManagementApi(free_port(), self.workdir / "management.crt")
        return [
            "--management",
            f"{LOOPBACK}:{self.api.port}",
            "--admin-password-file",
            str(password_file),
        ]

    def launch(self) -> None:
        config = self._write_config()
        self.admin_port = free_port()
        engine = Managed(
            self.product,
            [
                *_command(),
                "engine",
                "--config",
                str(config),
                "--db",
                str(self.db),
                "--workers",
                str(self.placement.workers),
                "--admin",
                f"{LOOPBACK}:{self.admin_port}",
                # per-connection logging would be work the other two are not asked to do
                "--log-level",
                "WARNING",
                *self._management_args(),
            ],
            self.placement.proxy_cpus,
            self.workdir / "engine.log",
        )
        self.processes = [engine.start()]

    def wait_ready(self) -> None:
        super().wait_ready()
        if self.api is not None:
            self.api.login("admin", self.api_password)

    def reconfigure(self, service: Service) -> None:
        self.replace_service(service)
        config = self._write_config()
        result = subprocess.run(
            [
                *_command(),
                "config",
                "apply",
                str(config),
                "--db",
                str(self.db),
                "--author",
                "bench",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0:
            raise RuntimeError(f"passerelle config apply failed: {result.stderr[-800:]}")

    def reconfigure_api(self, service: Service) -> None:
        """The same change as ``reconfigure``, as one PUT of the virtual service."""
        if self.api is None:
            raise RuntimeError("the engine runs without its management API")
        self.replace_service(service)
        status, body = self.api.call(
            "PUT",
            f"/api/v1/virtual-services/{service.name}",
            virtual_service(service, self.ports[service.name]),
        )
        if status != 200:
            raise RuntimeError(f"PUT virtual service: HTTP {status}: {body[:800]!r}")
