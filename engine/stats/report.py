"""Statistics per virtual service, SubVS and real server, summed over all workers.

``collect`` reads the shared counter table into JSON-able rows (the /stats document);
``prometheus`` renders those rows in the Prometheus text format (/metrics).
"""

from __future__ import annotations

from typing import Any

from passerelle.engine.model.config import Config, Pool
from passerelle.engine.runtime.pools import health_target_id, pool_id, server_slot_key
from passerelle.engine.runtime.services import subvs_slot_key, vs_slot_key
from passerelle.engine.stats.counters import COUNTERS, HEALTH_DOWN, HEALTH_UP, CounterTable

SERVER_STATES = ("enabled", "disabled", "draining")


def _counters(table: CounterTable, slot: int | None) -> dict[str, int]:
    # The supervisor assigns slots before it publishes a config, so None is only defensive.
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
        slot = slots.get(server_slot_key(pool, server.key))
        rows.append(
            {
                "server": server.key,
                "state": server.state,
                "health": _health(table, slot),
                "health_detail": details.get(health_target_id(pool, server.key), ""),
                **_counters(table, slot),
            }
        )
    return rows


def collect(
    config: Config, table: CounterTable, slots: dict[str, int], details: dict[str, str]
) -> list[dict[str, Any]]:
    """One row per virtual service, with its real servers and SubVSs (and theirs) nested."""
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
                **_counters(table, slots.get(vs_slot_key(vs.name))),
                "real_servers": _servers(table, slots, pool_id(vs.name), vs, details),
                "subvs": [
                    {
                        "name": sub.name,
                        **_counters(table, slots.get(subvs_slot_key(pool_id(vs.name, sub.name)))),
                        "real_servers": _servers(
                            table, slots, pool_id(vs.name, sub.name), sub, details
                        ),
                    }
                    for sub in vs.subvs
                ],
            }
        )
    return services


# counter -> (metric name suffix, type, help). Counters end in _total as Prometheus expects;
# "total" (connections accepted) becomes connections_total rather than total_total.
_METRICS = {
    "active": ("active_connections", "gauge", "Connections open now (HTTP real servers: requests)"),
    "total": (
        "connections_total",
        "counter",
        "Connections accepted (HTTP real servers: requests sent to it)",
    ),
    "requests": ("requests_total", "counter", "HTTP requests"),
    "bytes_in": (
        "bytes_in_total",
        "counter",
        "Bytes received from clients (services) or sent to the server (real servers)",
    ),
    "bytes_out": (
        "bytes_out_total",
        "counter",
        "Bytes sent to clients (services) or received from the server (real servers)",
    ),
    "failures": ("failures_total", "counter", "Failed connection attempts or failed exchanges"),
}
assert set(_METRICS) == set(COUNTERS), "a counter has no metric"

_SCOPES = ("vs", "subvs", "real_server")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus(services: list[dict[str, Any]], version: int) -> str:
    """The Prometheus text exposition (format 0.0.4) of ``collect``'s rows."""
    # Each family's samples must be contiguous, so rows are gathered per family first.
    samples: dict[tuple[str, str], list[str]] = {
        (scope, counter): [] for scope in _SCOPES for counter in COUNTERS
    }
    health: list[str] = []
    states: list[str] = []

    def add(scope: str, labels: str, row: dict[str, Any]) -> None:
        for counter in COUNTERS:
            samples[scope, counter].append(f"{{{labels}}} {row[counter]}")

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
                # One series per possible state, 1 for the current one: a draining server
                # can be graphed and alerted on without string matching.
                states.extend(
                    f'{{{labels},state="{state}"}} {1 if server["state"] == state else 0}'
                    for state in SERVER_STATES
                )

    lines: list[str] = []

    def family(name: str, kind: str, text: str, rows: list[str]) -> None:
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(name + row for row in rows)

    family("passerelle_config_version", "gauge", "Configuration version in effect", [f" {version}"])
    for (scope, counter), rows in samples.items():
        if rows:
            suffix, kind, text = _METRICS[counter]
            family(f"passerelle_{scope}_{suffix}", kind, text, rows)
    family(
        "passerelle_real_server_up",
        "gauge",
        "1 when the real server passes its health check",
        health,
    )
    family(
        "passerelle_real_server_state",
        "gauge",
        "1 for the administrative state of the real server (enabled, disabled, draining)",
        states,
    )
    return "\n".join(lines) + "\n"
