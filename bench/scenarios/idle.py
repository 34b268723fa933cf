"""Memory held by idle keep-alive client connections: resident memory of every process of the
proxy (RSS, and PSS which counts shared pages once) with N connections open, and per connection."""

from __future__ import annotations

import gc
import time

from bench.load import IdleConnections
from bench.procs import memory_kb
from bench.scenarios.common import Rig, Row, guarded
from bench.scenarios.throughput import l7_service

services = l7_service
SETTLE_SECONDS = 1.0


def measure(rig: Rig) -> list[Row]:
    n = rig.settings.idle_connections
    rss = Row("idle", f"{n:,} idle: RSS of all processes, MB", False)
    pss = Row("idle", f"{n:,} idle: PSS of all processes, MB", False)
    each = Row("idle", "RSS per idle connection, KB", False)
    # Freed memory mostly stays with a process: after the first round its RSS no longer drops
    # back, so every round is measured against the RSS before the first one opened anything.
    first_base: dict[str, int] = {}
    for _, proxy in rig.rounds():
        with guarded(rss, proxy.product):
            gc.collect()
            base_rss = first_base.setdefault(proxy.product, memory_kb(proxy.pids())[0])
            idle = IdleConnections(proxy.port("l7"))
            try:
                idle.open(n)
                time.sleep(SETTLE_SECONDS)
                loaded_rss, loaded_pss = memory_kb(proxy.pids())
                alive = idle.still_open()
            finally:
                idle.close()
            if alive < n:
                rss.note(proxy.product, f"only {alive} of {n} connections were still open")
            rss.add(proxy.product, loaded_rss / 1024)
            pss.add(proxy.product, loaded_pss / 1024)
            each.add(proxy.product, (loaded_rss - base_rss) / n)
            time.sleep(SETTLE_SECONDS)  # let the proxy see the closes before the next one
    return [rss, pss, each]
