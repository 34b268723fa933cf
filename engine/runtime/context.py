"""What every connection handler of one worker shares."""

from __future__ import annotations

from dataclasses import dataclass

from passerelle.engine.stats.counters import CounterTable
from passerelle.engine.stats.deferred import DeferredCounts


@dataclass(eq=False)
class WorkerContext:
    index: int
    table: CounterTable
    row: memoryview  # this worker's own counters: row[slot * WIDTH + counter]
    counts: DeferredCounts  # additions to ``row`` that may wait for the loop iteration's end


def client_ip(peer: tuple) -> str:
    ip = peer[0]
    # IPv4 clients on a dual-stack socket appear as ::ffff:a.b.c.d
    return ip[7:] if ip.startswith("::ffff:") else ip
