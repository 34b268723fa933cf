"""The scenarios, in the order they are reported; each names the listeners it needs and how it
measures them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.backends import BackEnds
from bench.scenarios import apply, bulk, idle, throughput, tls
from bench.scenarios.common import DIRECT, Rig, Row, Settings
from bench.services import Certificate, Service

ServicesFor = Callable[[BackEnds, dict[str, Certificate]], list[Service]]


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    services: ServicesFor
    measure: Callable[[Rig], list[Row]]


SCENARIOS: dict[str, Scenario] = {
    s.key: s
    for s in (
        Scenario(
            "l7",
            "L7 HTTP keep-alive, small responses, round robin over 3 back ends",
            throughput.l7_service,
            throughput.measure_l7,
        ),
        Scenario(
            "switch",
            "L7 with a Host-switched SubVS and source-IP persistence",
            throughput.switch_service,
            throughput.measure_switch,
        ),
        Scenario(
            "l4",
            "L4 TCP, same traffic as l7",
            throughput.l4_service,
            throughput.measure_l4,
        ),
        Scenario("bulk", "Bulk transfer through L7 and L4", bulk.services, bulk.measure),
        Scenario(
            "tls",
            "TLS offload: keep-alive requests and full handshakes",
            tls.offload_services,
            tls.measure_offload,
        ),
        Scenario(
            "reencrypt",
            "TLS offload and re-encryption to TLS back ends",
            tls.reencrypt_services,
            tls.measure_reencrypt,
        ),
        Scenario("idle", "Idle keep-alive client connections: memory", idle.services, idle.measure),
        Scenario(
            "latency",
            "Latency at a fixed moderate rate (paced wrk)",
            throughput.l7_service,
            throughput.measure_latency,
        ),
        Scenario(
            "apply",
            "Configuration change to traffic following it",
            apply.services,
            apply.measure,
        ),
    )
}

# Memory and reload first: before the load runs have grown every process's heap and pools.
RUN_ORDER = ("idle", "apply", "l7", "switch", "l4", "latency", "reencrypt", "tls", "bulk")

__all__ = ["DIRECT", "RUN_ORDER", "SCENARIOS", "Rig", "Row", "Scenario", "Settings"]
