"""Counter additions held by a worker reach its shared row when the loop iteration ends."""

from __future__ import annotations

from pathlib import Path

import gevent
import pytest

from passerelle.engine.stats.counters import ACTIVE, BYTES_OUT, REQUESTS, WIDTH, CounterTable
from passerelle.engine.stats.deferred import DeferredCounts


@pytest.fixture
def table(tmp_path: Path):
    counters = CounterTable(tmp_path / "counters", 2, create=True)
    yield counters
    counters.close()


def test_additions_reach_the_shared_row_once_the_loop_iteration_ends(table: CounterTable) -> None:
    row = table.row(1)
    counts = DeferredCounts(row, gevent.get_hub().loop.run_callback)
    counts.add(3 * WIDTH + REQUESTS, 1)
    counts.add(3 * WIDTH + REQUESTS, 1)
    counts.add(3 * WIDTH + BYTES_OUT, 1500)
    counts.add(7 * WIDTH + BYTES_OUT, 0)  # nothing to write
    # Another reader (the supervisor) sees nothing held back yet.
    assert table.value(3, REQUESTS) == 0
    gevent.sleep(0)
    assert table.value(3, REQUESTS) == 2
    assert table.value(3, BYTES_OUT) == 1500
    assert table.values(7) == [0] * WIDTH
    assert table.row(0)[3 * WIDTH + REQUESTS] == 0  # only this worker's row


def test_each_iteration_writes_what_was_added_since_the_last(table: CounterTable) -> None:
    scheduled: list[object] = []
    row = table.row(0)
    counts = DeferredCounts(row, scheduled.append)
    for _ in range(3):
        counts.add(2 * WIDTH + REQUESTS, 1)
    counts.add(5 * WIDTH + REQUESTS, -1)  # a retried request taken back
    assert len(scheduled) == 1  # one flush per iteration, however many additions
    counts.flush()
    assert row[2 * WIDTH + REQUESTS] == 3
    assert row[5 * WIDTH + REQUESTS] == -1
    counts.add(2 * WIDTH + REQUESTS, 4)
    assert len(scheduled) == 2
    counts.flush()
    assert row[2 * WIDTH + REQUESTS] == 7
    assert row[5 * WIDTH + REQUESTS] == -1
    assert row[2 * WIDTH + ACTIVE] == 0
