"""Time from a configuration change to traffic following it: the service's only real server is
swapped for another and new connections are probed until the new one answers.

Every product is changed the way its configuration file is reloaded: Passerelle runs
`passerelle config apply` (the clock starts before the command is run), HAProxy starts a new
process with -sf, nginx gets SIGHUP. Passerelle is also changed the way admins and scripts
usually do it, with one HTTPS PUT of the virtual service to its REST API (an API token, a new
connection); HAProxy and nginx have no API that changes their configuration, so that row is
Passerelle's alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from bench.backends import BackEnds
from bench.net import http_get
from bench.proxies import Passerelle, Proxy
from bench.scenarios.common import Rig, Row, guarded
from bench.services import Certificate, Service

TIMEOUT = 20.0


def services(backends: BackEnds, _: dict[str, Certificate]) -> list[Service]:
    return [Service("apply", "http", backends.plain[:1])]


class _Probe(threading.Thread):
    """New connections back to back until one is answered by the wanted back end."""

    def __init__(self, port: int, wanted: bytes) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.wanted = wanted
        self.seen_at: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                body = http_get(self.port, timeout=1.0)
            except OSError:
                body = b""  # a reload may refuse a connection for an instant
            if body == self.wanted:
                self.seen_at = time.monotonic()
                return
            time.sleep(0.001)


Change = Callable[[Service], None]


def _switch(proxy: Proxy, rig: Rig, change: Change) -> tuple[float, float]:
    """(ms until traffic follows, ms the change itself took)."""
    current = next(s for s in proxy.services if s.name == "apply")
    pool = rig.backends.plain
    target_index = 3 if current.servers[0] == pool[0] else 0
    probe = _Probe(proxy.port("apply"), BackEnds.body(target_index))
    probe.start()
    started = time.monotonic()
    try:
        change(current.with_servers((pool[target_index],)))
        returned = time.monotonic()
        probe.join(TIMEOUT)
    finally:
        probe.stop.set()
    proxy.settle()
    if probe.seen_at is None:
        raise TimeoutError(f"traffic did not move to the new server within {TIMEOUT:.0f} s")
    return (probe.seen_at - started) * 1000, (returned - started) * 1000


def _sample(follows: Row, ran: Row, proxy: Proxy, rig: Rig, change: Change) -> None:
    for _ in range(2):  # there and back: two samples per run
        with guarded(follows, proxy.product):
            total, took = _switch(proxy, rig, change)
            follows.add(proxy.product, total)
            ran.add(proxy.product, took)


def measure(rig: Rig) -> list[Row]:
    reload = Row("apply", "reload (config apply, -sf, HUP) → new server answers, ms", False)
    command = Row("apply", "of which the reload command ran, ms", None)
    api = Row("apply", "REST API PUT (Passerelle only) → new server answers, ms", False)
    put = Row("apply", "of which the PUT was answered, ms", None)
    for _, proxy in rig.rounds():
        _sample(reload, command, proxy, rig, proxy.reconfigure)
        if isinstance(proxy, Passerelle):
            _sample(api, put, proxy, rig, proxy.reconfigure_api)
    return [reload, command, api, put]
