"""Held counter additions for tests, written by the event loop before it waits, as a worker's
are (see engine/stats/deferred.py)."""

from __future__ import annotations

from collections.abc import MutableSequence
from typing import Any

import gevent

from passerelle.engine.stats.deferred import DeferredCounts

_flushers: list[Any] = []


def loop_flushed(cells: MutableSequence[int]) -> DeferredCounts:
    """Counts held for ``cells`` and flushed by the hub's loop until the test ends."""
    counts = DeferredCounts(cells)
    _flushers.append(counts.flush_before_each_wait(gevent.get_hub().loop))
    return counts


def stop_flushing() -> None:
    while _flushers:
        _flushers.pop().close()
