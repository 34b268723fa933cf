"""Where a TCP relay counts the bytes it delivers: two counter cells per direction."""

from __future__ import annotations

from passerelle.engine.stats.deferred import DeferredCounts

Pair = tuple[int, int]


class ByteTally:
    """Counter cells that every delivered byte is added to, as it is delivered.

    ``counts`` holds the additions for a row of cells (for a worker, its shared counter row;
    see stats/deferred.py); bytes from the client to the server are added at both indices of
    ``up`` (for a service, its own cell and its server's), bytes back at both indices of
    ``down``; the two indices of a direction are distinct.
    """

    __slots__ = ("counts", "down", "up")

    def __init__(self, counts: DeferredCounts, up: Pair, down: Pair) -> None:
        self.counts = counts
        self.up = up
        self.down = down

    def add(self, up: int, down: int) -> None:
        counts = self.counts
        for index in self.up:
            counts.add(index, up)
        for index in self.down:
            counts.add(index, down)
