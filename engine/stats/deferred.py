"""Counter increments held by a worker and written to its shared row once per loop iteration.

Adding to a cell of the shared row goes through a memoryview: reading, boxing and writing one
64-bit number costs about 450 instructions, and a small proxied request counts seven totals
(requests, bytes each way, per service and per server). Those totals only feed statistics, so
the worker adds them up in its own native array and writes each cell it touched once, at the
end of the event-loop iteration; under load an iteration serves tens of requests. Active
connection counts are never held back: limits and least-connection scheduling read them live.

A reader of the shared row (the supervisor's statistics) sees a total at most one iteration
late: the flush runs before the worker's loop next waits for events.
"""

from __future__ import annotations

from collections.abc import Callable, MutableSequence
from typing import Any, Final

from librt.vecs import vec
from mypy_extensions import i64

from passerelle.engine.stats.counters import SLOTS, WIDTH

CELLS: Final = SLOTS * WIDTH


class DeferredCounts:
    """One worker's held-back additions to its row: ``add(slot * WIDTH + counter, amount)``."""

    def __init__(
        self, row: MutableSequence[int], schedule: Callable[[Callable[[], None]], Any]
    ) -> None:
        self.row = row
        # Runs a function once the current loop iteration's callbacks are done (the hub's
        # loop.run_callback), so a burst of requests is written once.
        self.schedule = schedule
        self.pending = vec[i64]([0] * CELLS)
        self.touched: list[int] = []  # the cells with something pending, each once

    def add(self, cell: int, amount: int) -> None:
        pending = self.pending
        held = pending[cell]
        if held == 0:
            if amount == 0:
                return
            if not self.touched:
                self.schedule(self.flush)
            self.touched.append(cell)
        pending[cell] = held + amount

    def flush(self) -> None:
        """Write every pending addition to the row."""
        row, pending, touched = self.row, self.pending, self.touched
        for cell in touched:
            row[cell] += pending[cell]
            pending[cell] = 0
        touched.clear()
