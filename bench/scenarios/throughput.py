"""Keep-alive request rate (and the proxy CPU each request costs) for L7, L7 with content
switching and persistence, and L4; and latency at a fixed moderate rate."""

from __future__ import annotations

from collections.abc import Sequence

from bench.backends import BackEnds
from bench.load import WrkResult, pacing_script, wrk
from bench.net import LOOPBACK, http_get
from bench.scenarios.common import DIRECT, Rig, Row, guarded, proxy_cpu
from bench.services import SWITCH_HOST, Certificate, Service


def l7_service(backends: BackEnds, _: dict[str, Certificate]) -> list[Service]:
    return [Service("l7", "http", backends.pool)]


def switch_service(backends: BackEnds, _: dict[str, Certificate]) -> list[Service]:
    return [Service("switch", "http", backends.pool, switch_host=SWITCH_HOST)]


def l4_service(backends: BackEnds, _: dict[str, Certificate]) -> list[Service]:
    return [Service("l4", "tcp", backends.pool)]


def load(
    rig: Rig, port: int, connections: int, scheme: str = "http", headers: Sequence[str] = ()
) -> WrkResult:
    return wrk(
        f"{scheme}://{LOOPBACK}:{port}/",
        connections=connections,
        duration=rig.settings.duration,
        threads=rig.placement.load_threads,
        cpus=rig.placement.load_cpus,
        headers=headers,
    )


def rate_rows(
    rig: Rig,
    key: str,
    service: str,
    *,
    connections: Sequence[int],
    scheme: str = "http",
    headers: Sequence[str] = (),
    label: str = "",
    direct: bool = False,
) -> list[Row]:
    """req/s and proxy CPU µs per request, every proxy in every run, per connection count."""
    rows: list[Row] = []
    for count in connections:
        rate = Row(key, f"{label}c={count} req/s", True)
        cost = Row(key, f"{label}c={count} proxy CPU µs/req", False)
        for _, proxy in rig.rounds():
            with guarded(rate, proxy.product):
                before = proxy_cpu(proxy)
                result = load(rig, proxy.port(service), count, scheme, headers)
                cpu = proxy_cpu(proxy) - before
                rate.add(proxy.product, result.rate)
                cost.add(proxy.product, cpu / max(1, result.requests) * 1e6)
                if result.problems():
                    rate.note(proxy.product, result.problems())
        for _ in range(rig.settings.runs if direct else 0):
            with guarded(rate, DIRECT):
                rate.add(DIRECT, load(rig, rig.backends.pool[0].port, count).rate)
        rows += [rate, cost]
    return rows


def check_round_robin(rig: Rig, row: Row, service: str) -> None:
    """The proxies must do what the figures claim: six new connections reach 3 back ends."""
    expected = {BackEnds.body(i) for i in range(3)}
    for proxy in rig.proxies:
        with guarded(row, proxy.product):
            seen = {http_get(proxy.port(service)) for _ in range(6)}
            if seen != expected:
                row.note(proxy.product, f"round robin reached {sorted(seen)}, not all three")


def check_switch(rig: Rig, row: Row) -> None:
    for proxy in rig.proxies:
        with guarded(row, proxy.product):
            port = proxy.port("switch")
            app = {http_get(port, host=SWITCH_HOST) for _ in range(6)}
            other = {http_get(port, host="other.bench.test") for _ in range(3)}
            if len(app) != 1:
                row.note(proxy.product, f"source-IP persistence broken: {sorted(app)}")
            if other != {BackEnds.body(0)}:
                row.note(proxy.product, f"default SubVS answered {sorted(other)}")


def measure_l7(rig: Rig) -> list[Row]:
    rows = rate_rows(rig, "l7", "l7", connections=rig.settings.connections, direct=True)
    check_round_robin(rig, rows[0], "l7")
    return rows


def measure_switch(rig: Rig) -> list[Row]:
    rows = rate_rows(
        rig,
        "switch",
        "switch",
        connections=rig.settings.connections,
        headers=[f"Host: {SWITCH_HOST}"],
    )
    check_switch(rig, rows[0])
    return rows


def measure_l4(rig: Rig) -> list[Row]:
    rows = rate_rows(rig, "l4", "l4", connections=rig.settings.connections)
    check_round_robin(rig, rows[0], "l4")
    return rows


def measure_latency(rig: Rig) -> list[Row]:
    s = rig.settings
    script = pacing_script(rig.workdir, s.latency_delay_ms)
    label = f"c={s.latency_connections}, random pauses of mean {s.latency_delay_ms} ms"
    p50 = Row("latency", f"{label}: p50 ms", False)
    p99 = Row("latency", f"{label}: p99 ms", False)
    rate = Row("latency", f"{label}: achieved req/s", None)
    targets = [(proxy.product, proxy.port("l7")) for _, proxy in rig.rounds()]
    targets += [(DIRECT, rig.backends.pool[0].port)] * s.runs
    for product, port in targets:
        with guarded(p50, product):
            result = wrk(
                f"http://{LOOPBACK}:{port}/",
                connections=s.latency_connections,
                duration=s.duration,
                threads=1,
                cpus=rig.placement.load_cpus,
                script=script,
                latency=True,
            )
            if result.p50_ms is None or result.p99_ms is None:
                raise RuntimeError("wrk printed no latency distribution")
            p50.add(product, result.p50_ms)
            p99.add(product, result.p99_ms)
            rate.add(product, result.rate)
            if result.problems():
                p50.note(product, result.problems())
    return [p50, p99, rate]
