"""Statistics of a UDP virtual service: a session counts as a connection of its real server."""

from __future__ import annotations

from collections.abc import Callable

from passerelle.engine.runtime.services import ServiceRuntime
from passerelle.engine.runtime.snapshot import endpoint_key
from passerelle.engine.stats.counters import ACTIVE, BYTES_IN, BYTES_OUT, TOTAL, WIDTH

Endpoint = tuple[str, int]


class UdpCounters:
    def __init__(self, row: memoryview, current: Callable[[], ServiceRuntime | None]) -> None:
        self.row = row
        self.current = current
        # Slots are fixed when a session opens, so a reload that removes the server cannot
        # leave its active count raised for ever.
        self.sessions: dict[tuple[str, Endpoint], tuple[int, int | None]] = {}

    def _slots(self, server: Endpoint) -> tuple[int, int | None] | None:
        service = self.current()
        if service is None:
            return None
        pool = service.default_route.pool
        runtime = pool.by_key.get(endpoint_key(*server))
        return service.slot, None if runtime is None else runtime.slot

    def opened(self, client: str, server: Endpoint) -> None:
        slots = self._slots(server)
        if slots is None:
            return
        self.sessions[(client, server)] = slots
        for slot in slots:
            if slot is not None:
                self.row[slot * WIDTH + TOTAL] += 1
                self.row[slot * WIDTH + ACTIVE] += 1

    def closed(self, client: str, server: Endpoint) -> None:
        for slot in self.sessions.pop((client, server), ()):
            if slot is not None:
                self.row[slot * WIDTH + ACTIVE] -= 1

    def moved(self, up: int, down: int, server: Endpoint) -> None:
        slots = self._slots(server)
        if slots is None:
            return
        for slot in slots:
            if slot is not None:
                self.row[slot * WIDTH + BYTES_IN] += up
                self.row[slot * WIDTH + BYTES_OUT] += down
