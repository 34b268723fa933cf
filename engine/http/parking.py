"""Quiet keep-alive client connections wait without a greenlet.

A greenlet blocked in ``recv`` keeps its saved stack, about 8 KB; a keep-alive connection
that sends nothing needs only a read watcher and a timer, well under 1 KB. Once a client has
been quiet between requests for ``PARK_AFTER`` seconds its greenlet ends and the event loop
watches the socket: the first byte starts a new greenlet that carries on with the same
connection state, and the idle timeout still closes a client that never comes back.
"""

from __future__ import annotations

from collections.abc import Callable

import gevent
from gevent.hub import get_hub

# Longer than the pause between a busy client's requests (parking costs two watchers and a
# greenlet start), short enough that thousands of idle browsers hold no stacks.
PARK_AFTER = 0.5
_READ = 1


class Parked:
    """A connection waiting in the event loop for its next request or its idle timeout."""

    __slots__ = ("_on_expiry", "_on_readable", "_timer", "_watcher")

    def __init__(
        self,
        fd: int,
        remaining: float,
        on_readable: Callable[[], None],
        on_expiry: Callable[[], None],
    ) -> None:
        loop = get_hub().loop
        self._on_readable = on_readable
        self._on_expiry = on_expiry
        self._watcher = loop.io(fd, _READ)
        self._timer = loop.timer(max(remaining, 0.0))
        self._watcher.start(self._readable)
        self._timer.start(self._expired)

    def _readable(self) -> None:
        self._stop()
        gevent.spawn_raw(self._on_readable)

    def _expired(self) -> None:
        # Runs in the event loop itself: closing sockets does not block, so no greenlet is
        # needed to let an idle client go.
        self._stop()
        self._on_expiry()

    def _stop(self) -> None:
        self._watcher.stop()
        self._watcher.close()
        self._timer.stop()
        self._timer.close()
