"""Passerelle: `passerelle engine` (a supervisor and N workers) and `passerelle config apply`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.net import LOOPBACK, free_port
from bench.procs import Managed
from bench.proxies.base import Proxy
from bench.services import Certificate, Server, Service


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


class Passerelle(Proxy):
    product = "Passerelle"

    @property
    def db(self) -> Path:
        return self.workdir / "db"

    def _write_config(self) -> Path:
        path = self.workdir / "config.json"
        path.write_text(json.dumps(configuration(self.services, self.ports), indent=1))
        return path

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
                *_optional_listeners_off(),
            ],
            self.placement.proxy_cpus,
            self.workdir / "engine.log",
        )
        self.processes = [engine.start()]

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
