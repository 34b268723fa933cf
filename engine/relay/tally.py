"""Where a TCP relay counts the bytes it delivers: two cells of a counter row per direction."""

from __future__ import annotations

from collections.abc import MutableSequence

Pair = tuple[int, int]


class ByteTally:
    """Counter cells that every delivered byte is added to, in place, as it is delivered.

    ``cells`` is any writable sequence of integers (for a worker, its shared counter row);
    bytes from the client to the server are added at both indices of ``up`` (for a service,
    its own cell and its server's), bytes back at both indices of ``down``; the two indices of
    a direction are distinct. Adding in place rather than calling back keeps a small message's
    cost to two increments: a Python call per message is dearer than the message's own work.
    """

    __slots__ = ("cells", "down", "up")

    def __init__(self, cells: MutableSequence[int], up: Pair, down: Pair) -> None:
        self.cells = cells
        self.up = up
        self.down = down

    def add(self, up: int, down: int) -> None:
        cells = self.cells
        for index in self.up:
            cells[index] += up
        for index in self.down:
            cells[index] += down
