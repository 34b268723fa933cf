"""Bulk transfer: a 100 MB file fetched repeatedly through L7 and through L4, in MB/s, and the
proxy CPU seconds each GB costs."""

from __future__ import annotations

from bench.backends import BIG_BYTES, BIG_PATH, BackEnds
from bench.load import bulk
from bench.net import LOOPBACK
from bench.scenarios.common import DIRECT, Rig, Row, guarded, proxy_cpu
from bench.scenarios.throughput import l4_service, l7_service
from bench.services import Certificate, Service


def services(backends: BackEnds, certificates: dict[str, Certificate]) -> list[Service]:
    return l7_service(backends, certificates) + l4_service(backends, certificates)


def _url(port: int) -> str:
    return f"http://{LOOPBACK}:{port}{BIG_PATH}"


def measure(rig: Rig) -> list[Row]:
    count = max(1, round(rig.settings.bulk_mb * 1e6 / BIG_BYTES))
    # a slow proxy must not hang the run: allow 20 MB/s at the least
    timeout = count * BIG_BYTES / 20e6 + 10
    size = f"{count} x {BIG_BYTES // 1_000_000} MB"
    rows: list[Row] = []
    for service, label in (("l7", "L7"), ("l4", "L4")):
        speed = Row("bulk", f"{label} {size} MB/s", True)
        cost = Row("bulk", f"{label} proxy CPU s/GB", False)
        for _, proxy in rig.rounds():
            with guarded(speed, proxy.product):
                before = proxy_cpu(proxy)
                moved, seconds = bulk(
                    _url(proxy.port(service)), count, rig.placement.load_cpus, timeout
                )
                cpu = proxy_cpu(proxy) - before
                if moved != count * BIG_BYTES:
                    speed.note(proxy.product, f"moved {moved} bytes, not {count * BIG_BYTES}")
                speed.add(proxy.product, moved / 1e6 / seconds)
                cost.add(proxy.product, cpu / (moved / 1e9))
        for _ in range(rig.settings.runs):
            with guarded(speed, DIRECT):
                moved, seconds = bulk(
                    _url(rig.backends.pool[0].port), count, rig.placement.load_cpus, timeout
                )
                speed.add(DIRECT, moved / 1e6 / seconds)
        rows += [speed, cost]
    return rows
