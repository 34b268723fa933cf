"""Where a TCP relay counts the bytes it delivers: cells of a counter row, per direction."""

from __future__ import annotations

from collections.abc import MutableSequence


class ByteTally:
    """Counter cells that every delivered byte is added to, in place, as it is delivered.

    ``cells`` is any writable sequence of integers (for a worker, its shared counter row);
    bytes from the client to the server are added at each index of ``up``, bytes back at each
    index of ``down``. Adding in place rather than calling back keeps a small message's cost
    to a few increments: a Python call per message is dearer than the message's own work.
    """

    __slots__ = ("cells", "down", "up")

    def __init__(
        self, cells: MutableSequence[int], up: tuple[int, ...], down: tuple[int, ...]
    ) -> None:
        self.cells = cells
        self.up = up
        self.down = down

    def add(self, up: int, down: int) -> None:
        cells = self.cells
        for index in self.up:
            cells[index] += up
        for index in self.down:
            cells[index] += down
