"""Counter increments held by a worker and written to its shared row before its loop waits.

Adding to a cell of the shared row goes through a memoryview: reading, boxing and writing one
64-bit number costs about 450 instructions, and a small proxied request counts seven totals
(requests, bytes each way, per service and per server). Those totals only feed statistics, so
the worker adds them up in its own native arrays and writes each cell it touched once per
event-loop iteration, from a prepare watcher (libev runs those just before it waits for
events); under load an iteration serves tens of requests. Active connection counts are never
held back: limits and least-connection scheduling read them live.

The worker is its row's only writer (the supervisor only zeroes the active counts of a worker
that died), so it keeps each total it has touched and writes it whole: a cell is read once,
when first flushed (a worker that replaces a dead one carries on from its totals), and never
again. The watcher runs every iteration and returns at once when nothing was added; a
callback scheduled on demand would cost more than that every time a request came alone.

A reader of the shared row (the supervisor's statistics) sees a total at most one iteration
late: the flush runs after the iteration's callbacks and greenlets, before the loop waits.
"""

from __future__ import annotations

from collections.abc import MutableSequence
from typing import Any, Final

from librt.vecs import extend, vec
from mypy_extensions import i64

from passerelle.engine.stats.counters import WIDTH

# The arrays grow by this many slots' cells as higher slots are first counted: slots are handed
# out from 0 up, so a worker holds the cells of the slots in use, not of all 16,384.
_GROW_CELLS: Final = 64 * WIDTH
# libev runs pending watchers of higher priority first: gevent's own prepare watcher (priority
# 0, which runs scheduled callbacks and the greenlets they switch to) comes before this one,
# so what they add is written in the same iteration.
FLUSH_PRIORITY: Final = -2


class DeferredCounts:
    """One worker's held-back additions to its row: ``add(slot * WIDTH + counter, amount)``.

    ``flush()`` writes them; ``flush_before_each_wait(loop)`` has the loop call it.
    """

    def __init__(self, row: MutableSequence[int]) -> None:
        self.row = row
        self.pending = vec[i64]()  # added since the last flush
        # What this worker last wrote to each cell: 0 until then (see flush).
        self.totals = vec[i64]()
        self.size: i64 = 0  # cells the arrays hold
        self.touched: list[int] = []  # the cells with something pending, each once

    def add(self, cell: int, amount: int) -> None:
        if cell >= self.size:
            self._grow(cell)
        pending = self.pending
        held = pending[cell]
        if held == 0:
            if amount == 0:
                return
            self.touched.append(cell)
        pending[cell] = held + amount

    def _grow(self, cell: int) -> None:
        size = (cell // _GROW_CELLS + 1) * _GROW_CELLS
        zeros = [0] * (size - self.size)
        self.pending = extend(self.pending, zeros)
        self.totals = extend(self.totals, zeros)
        self.size = size

    def flush(self) -> None:
        """Write every pending addition to the row."""
        touched = self.touched
        if not touched:
            return
        row, pending, totals = self.row, self.pending, self.totals
        for cell in touched:
            total: i64 = totals[cell]
            if total == 0:
                # Never written here (a worker replacing a dead one carries on from its
                # totals), or written as 0, which reading the row gives back.
                total = row[cell]
            total += pending[cell]
            totals[cell] = total
            row[cell] = total
            pending[cell] = 0
        touched.clear()

    def flush_before_each_wait(self, loop: Any) -> Any:
        """Start and return the prepare watcher on gevent's ``loop`` that flushes, from the
        loop's next iteration on."""
        watcher = loop.prepare(ref=False, priority=FLUSH_PRIORITY)
        watcher.start(self.flush)
        return watcher
