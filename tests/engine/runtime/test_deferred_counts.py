"""Counter additions held by a worker reach its shared row before its event loop next waits."""

from __future__ import annotations

from pathlib import Path

import gevent
import pytest

from passerelle.engine.stats.counters import (
    ACTIVE,
    BYTES_OUT,
    REQUESTS,
    SLOTS,
    WIDTH,
    CounterTable,
)
from passerelle.engine.stats.deferred import DeferredCounts

from support.held_counts import loop_flushed


@pytest.fixture
def table(tmp_path: Path):
    counters = CounterTable(tmp_path / "counters", 2, create=True)
    yield counters
    counters.close()


def test_additions_reach_the_shared_row_before_the_loop_waits(table: CounterTable) -> None:
    counts = loop_flushed(table.row(1))
    gevent.sleep(0.001)  # from the next loop iteration on (as in a worker, long before traffic)
    counts.add(3 * WIDTH + REQUESTS, 1)
    counts.add(3 * WIDTH + REQUESTS, 1)
    counts.add(3 * WIDTH + BYTES_OUT, 1500)
    counts.add(7 * WIDTH + BYTES_OUT, 0)  # nothing to write
    # Another reader (the supervisor) sees nothing held back yet.
    assert table.value(3, REQUESTS) == 0
    gevent.sleep(0.001)  # the loop waits, so it flushed first
    assert table.value(3, REQUESTS) == 2
    assert table.value(3, BYTES_OUT) == 1500
    assert table.values(7) == [0] * WIDTH
    assert table.row(0)[3 * WIDTH + REQUESTS] == 0  # only this worker's row


def test_what_a_greenlet_adds_is_written_in_the_same_iteration(table: CounterTable) -> None:
    # Requests handed to a greenlet count from there: gevent runs greenlets from its own
    # prepare watcher, and the flush must come after it, or the total would wait for the
    # next event, however long that takes.
    row = table.row(0)
    counts = loop_flushed(row)
    gevent.sleep(0.001)
    seen: list[int] = []

    def serve_then_look() -> None:
        counts.add(4 * WIDTH + REQUESTS, 1)
        # A timer already due runs right after this iteration's poll, which returns at once:
        # only a flush in this iteration's prepare phase comes before it.
        timer = gevent.get_hub().loop.timer(0)
        timer.start(lambda: (seen.append(row[4 * WIDTH + REQUESTS]), timer.close()))

    gevent.spawn(serve_then_look)
    gevent.sleep(0.001)
    assert seen == [1]


def test_each_flush_writes_what_was_added_since_the_last(table: CounterTable) -> None:
    row = table.row(0)
    counts = DeferredCounts(row)
    for _ in range(3):
        counts.add(2 * WIDTH + REQUESTS, 1)
    counts.add(5 * WIDTH + REQUESTS, -1)  # a retried request taken back
    assert row[2 * WIDTH + REQUESTS] == 0
    counts.flush()
    assert row[2 * WIDTH + REQUESTS] == 3
    assert row[5 * WIDTH + REQUESTS] == -1
    counts.add(2 * WIDTH + REQUESTS, 4)
    counts.flush()
    counts.flush()  # nothing new: nothing changes
    assert row[2 * WIDTH + REQUESTS] == 7
    assert row[5 * WIDTH + REQUESTS] == -1
    assert row[2 * WIDTH + ACTIVE] == 0


def test_a_worker_that_replaces_a_dead_one_carries_on_from_its_totals(
    table: CounterTable,
) -> None:
    row = table.row(1)
    row[6 * WIDTH + REQUESTS] = 1_000  # left by the worker that died
    row[6 * WIDTH + ACTIVE] = 5  # the supervisor zeroes these, never the totals
    counts = DeferredCounts(row)
    counts.add(6 * WIDTH + REQUESTS, 2)
    counts.flush()
    assert row[6 * WIDTH + REQUESTS] == 1_002
    counts.add(6 * WIDTH + REQUESTS, 1)
    counts.flush()
    assert row[6 * WIDTH + REQUESTS] == 1_003
    assert row[6 * WIDTH + ACTIVE] == 5  # active counts are not held: never written here


def test_cells_of_any_slot_are_held_however_high(table: CounterTable) -> None:
    row = table.row(0)
    counts = DeferredCounts(row)
    last = (SLOTS - 1) * WIDTH + BYTES_OUT
    counts.add(last, 7)
    counts.add(0 * WIDTH + REQUESTS, 1)
    counts.add(700 * WIDTH + REQUESTS, 2)
    counts.flush()
    assert (row[last], row[REQUESTS], row[700 * WIDTH + REQUESTS]) == (7, 1, 2)
