"""Failed logins per client address: a few per minute, then 429 until the window moves on."""

from __future__ import annotations

import math
import time
from collections import deque


class FailureLimiter:
    def __init__(self, limit: int = 5, window: float = 60.0, max_clients: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return failures

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None if it may try now."""
        now = time.monotonic()
        failures = self._recent(client, now)
        if failures is None or len(failures) < self.limit:
            return None
        return max(1, math.ceil(failures[-self.limit] + self.window - now))

    def failed(self, client: str) -> None:
        now = time.monotonic()
        if client not in self._failures and len(self._failures) >= self.max_clients:
            # An address sweep must not grow memory without bound: forget stale clients.
            for known in list(self._failures):
                self._recent(known, now)
        self._failures.setdefault(client, deque(maxlen=self.limit)).append(now)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
