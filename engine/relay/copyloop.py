"""TCP relay through a copy loop: one greenlet per direction and one reused buffer each.

For what splice cannot do: TLS sockets, whose payload the kernel never sees, and kernels
without splice. Same lifecycle as every TCP relay: an end of stream is passed on as a
half-close; an error aborts the relay and resets both peers; the idle timeout closes both
sides gracefully once no byte moved in either direction for that long.
"""

from __future__ import annotations

import logging
import socket
from time import monotonic

import gevent
from gevent.hub import get_hub

from passerelle.engine.relay.ends import close_both, shutdown_write
from passerelle.engine.relay.tally import ByteTally

log = logging.getLogger(__name__)

_COPY_BUFFER = 64 * 1024
# Chunks moved in a row before a busy direction lets other connections run.
_BURST = 16


class CopyRelay:
    """Relays two sockets from the calling greenlet (and one more); owns and closes both."""

    __slots__ = (
        "client",
        "closing",
        "down",
        "hub",
        "idle_timeout",
        "last_activity",
        "reset",
        "server",
        "tally",
        "timer",
        "up",
    )

    def __init__(
        self,
        client: socket.socket,
        server: socket.socket,
        idle_timeout: float,
        tally: ByteTally | None,
    ) -> None:
        self.client = client
        self.server = server
        self.idle_timeout = idle_timeout
        self.tally = tally
        self.hub = get_hub()
        self.up = 0
        self.down = 0
        self.closing = False
        self.reset = False
        self.last_activity = monotonic()
        self.timer = None

    def run(self) -> tuple[int, int]:
        """Copy both ways until both directions end; returns (up, down) byte counts."""
        # The relay owns time-outs: a per-operation timeout would cut quiet directions.
        self.client.settimeout(None)
        self.server.settimeout(None)
        if self.idle_timeout > 0:
            self._arm_timer(self.idle_timeout)
        downstream = gevent.spawn(self._pump, self.server, self.client, False)
        try:
            try:
                self._pump(self.client, self.server, True)
                downstream.join()
            finally:
                if not downstream.dead:  # this greenlet is being killed
                    self._abort(reset=True)
                    downstream.join()
        finally:
            if self.timer is not None:
                self.timer.close()
                self.timer = None
            close_both(self.client, self.server, self.reset)
        return self.up, self.down

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        buffer = bytearray(_COPY_BUFFER)
        view = memoryview(buffer)
        burst = 0
        try:
            recv_into = src.recv_into
            sendall = dst.sendall
            while True:
                moved = recv_into(buffer)
                if not moved:
                    break
                sendall(view[:moved])
                self._count(moved, upstream)
                burst += 1
                if burst == _BURST:
                    burst = 0
                    gevent.sleep(0)  # let other connections run
            shutdown_write(dst)
        except OSError as exc:
            if not self.closing:
                direction = "client to server" if upstream else "server to client"
                log.debug("TCP relay aborted (%s): %s", direction, exc)
                self._abort(reset=True)
        except Exception:
            log.exception("TCP relay direction failed")
            self._abort(reset=True)

    def _count(self, moved: int, upstream: bool) -> None:
        self.last_activity = monotonic()
        if upstream:
            self.up += moved
            if self.tally is not None:
                self.tally.add(moved, 0)
        else:
            self.down += moved
            if self.tally is not None:
                self.tally.add(0, moved)

    def _abort(self, reset: bool) -> None:
        if self.closing:
            return
        self.closing = True
        self.reset = reset
        # gevent wakes greenlets blocked on a socket that gets closed.
        close_both(self.client, self.server, reset)

    def _arm_timer(self, delay: float) -> None:
        timer = self.hub.loop.timer(delay)
        timer.start(self._on_timer)
        self.timer = timer

    def _on_timer(self) -> None:
        # Runs in the hub. One timer per relay, re-armed only when it fires, so traffic costs
        # nothing but a timestamp.
        if self.closing:
            return
        remaining = self.idle_timeout - (monotonic() - self.last_activity)
        expired = self.timer
        if remaining > 0:
            self._arm_timer(remaining)
        else:
            log.debug("TCP relay idle for %g s: closing", self.idle_timeout)
            self._abort(reset=False)
        expired.close()
