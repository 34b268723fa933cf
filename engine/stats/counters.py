"""Per-worker counters in one shared memory file, so that every worker sees the others' numbers.

Each worker writes only its own row (single writer, so no locks are needed); readers add the rows
up. That gives cross-worker totals for statistics, least-connection scheduling and connection
limits without any message passing on the hot path. A limit can be overshot by at most one
connection per worker at one instant, which is the price of not locking.

The health region holds one byte per slot, and the down region the time (CLOCK_MONOTONIC, one
clock for every process) at which each slot's server was last marked down; both are written only
by the supervisor, which also counts its health writes (the health generation): a worker that
sees the same generation knows no health byte changed, without reading them all.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Final

# Final literals: the compiled request path (engine/compiled.py) builds them into its code.
COUNTERS = ("active", "total", "requests", "bytes_in", "bytes_out", "failures")
ACTIVE: Final = 0
TOTAL: Final = 1
REQUESTS: Final = 2
BYTES_IN: Final = 3
BYTES_OUT: Final = 4
FAILURES: Final = 5
WIDTH: Final = 6  # len(COUNTERS)
SLOTS: Final = 16384

HEALTH_UNKNOWN: Final = 0
HEALTH_UP: Final = 1
HEALTH_DOWN: Final = 2


class CounterTable:
    def __init__(self, path: Path, workers: int, *, create: bool = False) -> None:
        self.path = path
        self.workers = workers
        row_bytes = SLOTS * WIDTH * 8
        health_end = row_bytes * workers + SLOTS
        down_end = health_end + SLOTS * 8
        size = down_end + 8
        if create:
            with open(path, "wb") as f:
                f.truncate(size)
        fd = os.open(path, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        view = memoryview(self._map)
        self._rows = [view[i * row_bytes : (i + 1) * row_bytes].cast("q") for i in range(workers)]
        self.health = view[row_bytes * workers : health_end]
        self.down_at = view[health_end:down_end].cast("d")
        self.health_generation = view[down_end:].cast("q")

    def set_health(self, slot: int, state: int) -> None:
        """Write a server's health byte (the supervisor's job) and count the change."""
        self.health[slot] = state
        self.health_generation[0] += 1

    def row(self, worker: int) -> memoryview:
        """The writable row of one worker: index ``slot * WIDTH + counter``."""
        return self._rows[worker]

    def value(self, slot: int, counter: int) -> int:
        index = slot * WIDTH + counter
        return sum(row[index] for row in self._rows)

    def values(self, slot: int) -> list[int]:
        base = slot * WIDTH
        return [sum(row[base + c] for row in self._rows) for c in range(WIDTH)]

    def reset_worker(self, worker: int) -> None:
        """A worker that died takes its active connections with it; totals are kept."""
        row = self._rows[worker]
        for slot in range(SLOTS):
            row[slot * WIDTH + ACTIVE] = 0

    def close(self) -> None:
        self.health.release()
        self.down_at.release()
        self.health_generation.release()
        for row in self._rows:
            row.release()
        self._map.close()
