"""What the pages show but do not change: live figures, licence, HA role, system facts."""

from __future__ import annotations

import datetime as dt
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from passerelle.engine.manage.api.context import ApiContext

STANDALONE = "standalone"


@dataclass
class Health:
    up: int = 0
    down: int = 0
    unknown: int = 0

    def add(self, servers: list[dict[str, Any]]) -> None:
        for server in servers:
            state = server.get("health")
            if state == "up":
                self.up += 1
            elif state == "down":
                self.down += 1
            else:
                self.unknown += 1

    @property
    def summary(self) -> str:
        parts = [f"{self.up} up", f"{self.down} down"]
        if self.unknown:
            parts.append(f"{self.unknown} unknown")
        return ", ".join(parts)


@dataclass
class ServiceFigures:
    name: str
    enabled: bool
    active: int
    requests: int
    health: Health
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)  # pool/key -> row


def statistics(ctx: ApiContext) -> dict[str, ServiceFigures]:
    """The engine's live rows by virtual service name; empty when no engine is attached."""
    rows = ctx.stats() if ctx.stats else []
    figures: dict[str, ServiceFigures] = {}
    for row in rows:
        health = Health()
        health.add(row.get("real_servers", []))
        servers = {f"/{s['server']}": s for s in row.get("real_servers", [])}
        for sub in row.get("subvs", []):
            health.add(sub.get("real_servers", []))
            servers.update({f"{sub['name']}/{s['server']}": s for s in sub["real_servers"]})
        figures[row["name"]] = ServiceFigures(
            name=row["name"],
            enabled=bool(row.get("enabled", True)),
            active=int(row.get("active", 0)),
            requests=int(row.get("requests", 0)) or int(row.get("total", 0)),
            health=health,
            servers=servers,
        )
    return figures


def ha_state(path: Path) -> str:
    """The role the HA part writes (first line of the file), else standalone."""
    try:
        line = path.read_text(encoding="utf-8", errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return STANDALONE
    shown = "".join(ch for ch in line if ch.isprintable()).strip()[:60]
    return shown or STANDALONE


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class LicenceView:
    available: bool
    kind: str = ""
    serial: str = ""
    expires: str = ""
    days_left: int | None = None
    features: tuple[str, ...] = ()
    expiry_effect: str = ""
    reason: str = ""  # why nothing is known, when not available


def licence_module() -> Any | None:
    # The licence part ships separately; the UI must still work on a build without it.
    try:
        return importlib.import_module("passerelle.engine.manage.licence")
    except ImportError:
        return None


def licence(directory: Path) -> LicenceView:
    module = licence_module()
    if module is None or not hasattr(module, "licence_status"):
        return LicenceView(False, reason="licence management is not available in this build")
    try:
        state = module.licence_status(directory)
    except (OSError, ValueError) as exc:
        return LicenceView(False, reason=f"licence status unreadable: {exc}")
    expires = state.expires
    if isinstance(expires, dt.datetime):
        expires = expires.strftime("%Y-%m-%d")
    return LicenceView(
        True,
        kind=str(state.kind),
        serial=str(state.serial),
        expires=str(expires or ""),
        days_left=state.days_left,
        features=tuple(state.features or ()),
        expiry_effect=str(state.expiry_effect or ""),
    )


def system_facts(directory: Path) -> list[tuple[str, str]]:
    """Hostname, network, DNS, NTP and time zone as first boot recorded them."""
    network = read_json(directory / "network.json")
    identity = read_json(directory / "identity.json")

    def text(value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(str(v) for v in value) or "—"
        return "—" if value in (None, "") else str(value)

    address = network.get("address")
    prefix = network.get("prefix") or network.get("prefix_length")
    if address and prefix:
        address = f"{address}/{prefix}"
    return [
        ("Host name", text(network.get("hostname"))),
        ("Interface", text(network.get("interface"))),
        ("Address", text(address)),
        ("Gateway", text(network.get("gateway"))),
        ("DNS servers", text(network.get("dns"))),
        ("NTP servers", text(network.get("ntp"))),
        ("Time zone", text(network.get("timezone") or network.get("time_zone") or "UTC")),
        ("Settings from", text(network.get("source"))),
        ("Serial number", text(identity.get("serial"))),
        ("First boot", text(identity.get("first_boot"))),
    ]
