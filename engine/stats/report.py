"""Statistics per virtual service, SubVS and real server, summed over all workers."""

from __future__ import annotations

from typing import Any

from passerelle.engine.model.config import Config, Pool
from passerelle.engine.stats.counters import COUNTERS, HEALTH_DOWN, HEALTH_UP, CounterTable


def _counters(table: CounterTable, slot: int | None) -> dict[str, int]:
    values = table.values(slot) if slot is not None else [0] * len(COUNTERS)
    return dict(zip(COUNTERS, values, strict=True))


def _health(table: CounterTable, slot: int | None) -> str:
    if slot is None:
        return "unknown"
    state = table.health[slot]
    return "up" if state == HEALTH_UP else "down" if state == HEALTH_DOWN else "unknown"


def _servers(
    table: CounterTable, slots: dict[str, int], pool: str, model: Pool, details: dict[str, str]
) -> list[dict[str, Any]]:
    rows = []
    for server in model.real_servers:
        slot = slots.get(f"srv:{pool}|{server.key}")
        rows.append(
            {
                "server": server.key,
                "state": server.state,
                "health": _health(table, slot),
                "health_detail": details.get(f"{pool}|{server.key}", ""),
                **_counters(table, slot),
            }
        )
    return rows


def collect(
    config: Config, table: CounterTable, slots: dict[str, int], details: dict[str, str]
) -> list[dict[str, Any]]:
    services = []
    for vs in config.virtual_services:
        services.append(
            {
                "name": vs.name,
                "address": vs.address,
                "ports": vs.ports,
                "protocol": vs.protocol,
                "mode": vs.mode,
                "enabled": vs.enabled,
                **_counters(table, slots.get(f"vs:{vs.name}")),
                "real_servers": _servers(table, slots, vs.name, vs, details),
                "subvs": [
                    {
                        "name": sub.name,
                        **_counters(table, slots.get(f"subvs:{vs.name}/{sub.name}")),
                        "real_servers": _servers(
                            table, slots, f"{vs.name}/{sub.name}", sub, details
                        ),
                    }
                    for sub in vs.subvs
                ],
            }
        )
    return services


_HELP = {
    "active": ("gauge", "Connections open now"),
    "total": ("counter", "Connections accepted"),
    "requests": ("counter", "HTTP requests"),
    "bytes_in": ("counter", "Bytes received from clients (service) or sent to the server"),
    "bytes_out": ("counter", "Bytes sent to clients (service) or received from the server"),
    "failures": ("counter", "Failed connection attempts or failed exchanges"),
}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus(services: list[dict[str, Any]], version: int) -> str:
    samples: dict[tuple[str, str], list[str]] = {}
    health: list[str] = []

    def add(scope: str, labels: str, row: dict[str, Any]) -> None:
        for counter in COUNTERS:
            samples.setdefault((scope, counter), []).append(f"{{{labels}}} {row[counter]}")

    for vs in services:
        vs_label = f'vs="{_label(vs["name"])}"'
        add("vs", vs_label, vs)
        pools = [("", vs["real_servers"])]
        for sub in vs["subvs"]:
            add("subvs", f'{vs_label},subvs="{_label(sub["name"])}"', sub)
            pools.append((sub["name"], sub["real_servers"]))
        for sub_name, servers in pools:
            for server in servers:
                labels = (
                    f'{vs_label},subvs="{_label(sub_name)}",server="{_label(server["server"])}"'
                )
                add("real_server", labels, server)
                health.append(f"{{{labels}}} {1 if server['health'] == 'up' else 0}")

    lines: list[str] = []

    def family(name: str, kind: str, text: str, rows: list[str]) -> None:
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(name + row for row in rows)

    family("passerelle_config_version", "gauge", "Configuration version in effect", [f" {version}"])
    for (scope, counter), rows in samples.items():
        kind, text = _HELP[counter]
        suffix = "_total" if kind == "counter" else ""
        family(f"passerelle_{scope}_{counter}{suffix}", kind, text, rows)
    family(
        "passerelle_real_server_up",
        "gauge",
        "1 when the real server passes its health check",
        health,
    )
    return "\n".join(lines) + "\n"
