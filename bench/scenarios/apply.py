"""Time from a configuration change to traffic following it: the service's only real server is
swapped for another and new connections are probed until the new one answers.

Passerelle: `passerelle config apply` (the clock starts before the command is run). HAProxy: a
new process with -sf (its usual reload). nginx: SIGHUP to the master."""

from __future__ import annotations

import threading
import time

from bench.backends import BackEnds
from bench.net import http_get
from bench.proxies import Proxy
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


def _switch(proxy: Proxy, rig: Rig) -> tuple[float, float]:
    """(ms until traffic follows, ms the change command itself took)."""
    current = next(s for s in proxy.services if s.name == "apply")
    pool = rig.backends.plain
    target_index = 3 if current.servers[0] == pool[0] else 0
    probe = _Probe(proxy.port("apply"), BackEnds.body(target_index))
    probe.start()
    started = time.monotonic()
    try:
        proxy.reconfigure(current.with_servers((pool[target_index],)))
        returned = time.monotonic()
        probe.join(TIMEOUT)
    finally:
        probe.stop.set()
    proxy.settle()
    if probe.seen_at is None:
        raise TimeoutError(f"traffic did not move to the new server within {TIMEOUT:.0f} s")
    return (probe.seen_at - started) * 1000, (returned - started) * 1000


def measure(rig: Rig) -> list[Row]:
    follows = Row("apply", "change → new server answers, ms", False)
    command = Row("apply", "of which the change command ran, ms", None)
    for _, proxy in rig.rounds():
        for _ in range(2):  # there and back: two samples per run
            with guarded(follows, proxy.product):
                total, ran = _switch(proxy, rig)
                follows.add(proxy.product, total)
                command.add(proxy.product, ran)
    return [follows, command]
