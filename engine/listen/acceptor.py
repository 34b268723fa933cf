"""Accepting connections from an event-loop callback, with no greenlet per connection.

gevent's StreamServer spawns a greenlet for every accepted connection and closes the socket
when it ends. An HTTP connection needs no greenlet of its own (its lane and, for TLS, its
handshake live in callbacks), so the acceptor hands each new descriptor to a callback that runs
in the event loop and owns the descriptor from then on. Whoever needs to block (an L4
connection dialling its server) spawns its own greenlet.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from typing import Any

from gevent import socket as gsocket
from gevent.hub import get_hub

log = logging.getLogger(__name__)

OnConnection = Callable[[int, tuple], None]

# Connections taken per wake-up: enough to drain a burst, few enough to let other callbacks run.
ACCEPT_BATCH = 64
# Out of descriptors or memory: stop accepting for a moment rather than spin on the error;
# the wait doubles while it lasts.
PAUSE_MIN = 0.01
PAUSE_MAX = 1.0
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_READ = 1


class Acceptor:
    """Accepts on a listening socket and calls ``on_connection(fd, peer)`` in the event loop.

    ``on_connection`` must not block, and owns the descriptor: closing it is its job, even when
    it fails (an exception is logged, the acceptor carries on). ``close()`` stops accepting and
    closes the listening socket; connections already handed over are not touched.
    """

    __slots__ = ("closed", "listener", "on_connection", "pause", "timer", "watcher")

    def __init__(self, listener: gsocket.socket, on_connection: OnConnection) -> None:
        self.listener = listener
        self.on_connection = on_connection
        loop = get_hub().loop
        self.watcher = loop.io(listener.fileno(), _READ)
        self.timer: Any = None  # a libev timer while accepting is paused
        self.pause = PAUSE_MIN
        self.closed = False

    def start(self) -> None:
        self.watcher.start(self._readable)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.watcher.stop()
        self.watcher.close()
        self._stop_timer()
        self.listener.close()

    def _readable(self) -> None:
        accept = self.listener._sock._accept  # type: ignore[attr-defined]
        for _ in range(ACCEPT_BATCH):
            try:
                fd, peer = accept()
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRORS:
                    self._pause_for(exc)
                    return
                # ECONNABORTED and the like concern one client only
                log.debug("accept failed: %s", exc)
                continue
            self.pause = PAUSE_MIN
            try:
                self.on_connection(fd, peer)
            except Exception:
                log.exception("a new connection from %s could not be served", peer)

    def _pause_for(self, exc: OSError) -> None:
        log.warning("not accepting for %.2f s: %s", self.pause, exc)
        self.watcher.stop()
        self._stop_timer()
        timer = self.timer = get_hub().loop.timer(self.pause)
        timer.start(self._resume)
        self.pause = min(PAUSE_MAX, self.pause * 2)

    def _resume(self) -> None:
        self._stop_timer()
        if not self.closed:
            self.watcher.start(self._readable)

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.stop()
            self.timer.close()
            self.timer = None
