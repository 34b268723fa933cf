"""TCP relay of two plain sockets run from event-loop callbacks.

A greenlet per direction pays for two switches and a watcher start per message, which for
small messages costs more than moving the bytes. Here each direction is a read watcher on its
source socket whose callback moves what arrived to the destination without blocking, so while
bytes flow no greenlet runs at all. Small messages are copied with one read and one write;
once a read fills its buffer the direction is a stream and is spliced source -> pipe ->
destination, so bulk payload never enters Python. A destination that cannot take everything
stops the direction's reading (backpressure) until a write watcher says it has room again.

Everything a small message needs (the read, the write, adding its size to the statistics'
counters in place) happens in the one callback, with no further Python call: at a few thousand
messages a second per connection, each call shows.

Lifecycle, as for every TCP relay: an end of stream is passed on as a half-close; an error
aborts the relay and resets both peers, so that a truncated stream never looks like a complete
one; a repeating check closes both sides gracefully once no byte moved in either direction for
the idle timeout (traffic touches no timer and reads no clock).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import Any, Final

from gevent.hub import get_hub

from passerelle.engine.relay import splice as pipes
from passerelle.engine.relay.ends import close_both, shutdown_write
from passerelle.engine.relay.tally import ByteTally
from passerelle.engine.runtime import nonblocking_io
from passerelle.engine.stats.deferred import DeferredCounts

log = logging.getLogger(__name__)

_READ = 1
_WRITE = 2
# Pipefuls moved in one callback before a busy direction lets other connections run.
_BURST = 16
# Reads up to this size are copied through Python; a read that fills it starts splicing.
SMALL = 16 * 1024
# Final: compiled, they are C statics rather than a dictionary look-up per message.
_os_read: Final = nonblocking_io.read
_os_write: Final = nonblocking_io.write
# Idle checks per idle timeout: a quiet connection is closed after the idle timeout plus at most
# one check's interval.
_IDLE_CHECKS = 4

OnEnd = Callable[[int, int], None]


class _Direction:
    """Bytes from one socket to the other: a read watcher, and a write watcher when blocked."""

    __slots__ = (
        "counts",
        "dst",
        "dst_fd",
        "ended",
        "first",
        "moved",
        "pending",
        "pipe",
        "reader",
        "relay",
        "second",
        "small",
        "src_fd",
        "streaming",
        "unsent",
        "up",
        "writer",
    )

    def __init__(
        self,
        relay: SpliceRelay,
        src: socket.socket,
        dst: socket.socket,
        up: bool,
        tally: ByteTally | None,
    ) -> None:
        self.relay = relay
        # gevent keeps the kernel sockets under its wrappers non-blocking: the callbacks read
        # and write their descriptors directly and never wait on them.
        self.src_fd = src.fileno()
        self.dst = dst
        self.dst_fd = dst.fileno()
        self.up = up
        # The two cells delivered bytes are added to, held natively: a call through the tally
        # per message would cost more than the message's own work.
        self.counts: DeferredCounts | None = None if tally is None else tally.counts
        self.first, self.second = (0, 0) if tally is None else tally.up if up else tally.down
        self.moved = 0  # bytes delivered to the destination
        self.reader = relay.loop.io(self.src_fd, _READ)
        self.writer: Any = None
        self.small = SMALL  # read once: a module global costs a look-up per message
        self.streaming = False  # the last read filled its buffer: splice from now on
        self.unsent: bytes | None = None  # copied bytes the destination has not taken yet
        # Held only while bytes are in flight: quiet long-lived connections would otherwise pin
        # two descriptors per direction.
        self.pipe: pipes.Pipe | None = None
        self.pending = 0  # bytes in the pipe not yet written to the destination
        self.ended = False

    def start(self) -> None:
        self.reader.start(self._readable)

    def _readable(self) -> None:
        # The path of every small message, so it is all in this one call: a read, a write, the
        # counters. It costs two system calls, against two splices plus the pipe's bookkeeping;
        # a read that fills the buffer means a stream, which is spliced instead. Reads and writes
        # on the descriptors (nonblocking_io) cost less than the socket methods.
        if self.streaming:
            self._stream()
            return
        try:
            data = _os_read(self.src_fd, self.small)
            size = len(data)
            if not size:
                self._end_of_stream()
                return
            try:
                sent = _os_write(self.dst_fd, data)
            except BlockingIOError:
                sent = 0
            if sent:
                self.moved += sent
                counts = self.counts
                if counts is not None:
                    counts.add(self.first, sent)
                    counts.add(self.second, sent)
            if sent < size:
                self.unsent = data[sent:]
                self._wait_for_room()
            elif size == self.small:
                self.streaming = True
        except BlockingIOError:
            return  # woken with nothing to read after all
        except OSError as exc:
            self.relay.fail(exc, self.up)
        except Exception:
            log.exception("TCP relay direction failed")
            self.relay.close(reset=True)

    def _stream(self) -> None:
        try:
            self._splice()
        except OSError as exc:
            self.relay.fail(exc, self.up)
        except Exception:
            log.exception("TCP relay direction failed")
            self.relay.close(reset=True)

    def _delivered(self, count: int) -> None:
        self.moved += count
        counts = self.counts
        if counts is not None:
            counts.add(self.first, count)
            counts.add(self.second, count)

    def _splice(self) -> None:
        pipe = self.pipe
        if pipe is None:
            pipe = self.pipe = pipes.acquire()
        src_fd, write_fd, size = self.src_fd, pipe.write_fd, pipe.size
        for _ in range(_BURST):
            try:
                moved = os.splice(src_fd, write_fd, size, flags=pipes.FLAGS)
            except BlockingIOError:
                break  # woken with nothing to read after all
            if not moved:
                self.pipe = None
                pipes.release(pipe, True)
                self._end_of_stream()
                return
            self.pending = moved
            if not self._flush():
                self._wait_for_room()
                return
            if moved < size:
                # The socket had no more: do not pay for a splice that fails with EAGAIN.
                self.streaming = moved >= self.small
                break
        self.pipe = None
        pipes.release(pipe, True)

    def _writable(self) -> None:
        try:
            if self.unsent is not None:
                if not self._send_unsent():
                    return
            else:
                if not self._flush():
                    return
                pipe = self.pipe
                if pipe is not None:
                    self.pipe = None
                    pipes.release(pipe, True)
            self.writer.stop()
            self.reader.start(self._readable)
        except OSError as exc:
            self.relay.fail(exc, self.up)
        except Exception:
            log.exception("TCP relay direction failed")
            self.relay.close(reset=True)

    def _send_unsent(self) -> bool:
        data = self.unsent
        if data is None:
            return True
        try:
            sent = _os_write(self.dst_fd, data)
        except BlockingIOError:
            return False
        self._delivered(sent)
        if sent < len(data):
            self.unsent = data[sent:]
            return False
        self.unsent = None
        return True

    def _flush(self) -> bool:
        """Write what the pipe holds to the destination; False if it could not take it all."""
        pipe = self.pipe
        assert pipe is not None, "flushing a direction that holds no pipe"
        left = self.pending
        read_fd, dst_fd = pipe.read_fd, self.dst_fd
        try:
            while left:
                try:
                    left -= os.splice(read_fd, dst_fd, left, flags=pipes.FLAGS)
                except BlockingIOError:
                    return False
        finally:
            if left != self.pending:
                self._delivered(self.pending - left)
                self.pending = left
        return True

    def _wait_for_room(self) -> None:
        self.reader.stop()
        if self.writer is None:
            self.writer = self.relay.loop.io(self.dst_fd, _WRITE)
        self.writer.start(self._writable)

    def _end_of_stream(self) -> None:
        self.reader.stop()
        self.ended = True
        shutdown_write(self.dst)
        self.relay.direction_ended()

    def close(self) -> None:
        self.reader.close()
        self.unsent = None
        if self.writer is not None:
            self.writer.close()
        if self.pipe is not None:
            pipes.release(self.pipe, self.pending == 0)
            self.pipe = None


class SpliceRelay:
    """Relays two plain TCP sockets from the event loop; owns and finally closes both.

    Delivered bytes are added to ``tally`` as they go; ``on_end(up, down)`` is called once,
    with the totals, after both sockets are closed, from the event loop, and must not block.
    """

    __slots__ = (
        "client",
        "closing",
        "downstream",
        "idle_timeout",
        "loop",
        "on_end",
        "quiet",
        "seen",
        "server",
        "timer",
        "upstream",
    )

    def __init__(
        self,
        client: socket.socket,
        server: socket.socket,
        idle_timeout: float,
        tally: ByteTally | None,
        on_end: OnEnd | None,
    ) -> None:
        self.client = client
        self.server = server
        self.idle_timeout = idle_timeout
        self.on_end = on_end
        self.loop = get_hub().loop
        self.closing = False
        self.timer: Any = None
        self.seen = 0  # bytes moved both ways at the last idle check
        self.quiet = 0  # idle checks in a row that saw no byte move
        self.upstream = _Direction(self, client, server, True, tally)
        self.downstream = _Direction(self, server, client, False, tally)

    def start(self) -> None:
        """Begin relaying; returns at once."""
        self.upstream.start()
        self.downstream.start()
        if self.idle_timeout > 0:
            # A repeating check, not a timer moved by traffic, so a message costs nothing for
            # it; the connection closes between one and 1 + 1/_IDLE_CHECKS idle timeouts after
            # its last byte.
            every = self.idle_timeout / _IDLE_CHECKS
            self.timer = timer = self.loop.timer(every, every)
            timer.start(self._check_idle)

    def abort(self) -> None:
        """End the relay now, resetting both peers."""
        self.close(reset=True)

    # --- called by the directions -----------------------------------------------------------

    def direction_ended(self) -> None:
        if self.upstream.ended and self.downstream.ended:
            self.close(reset=False)

    def fail(self, exc: OSError, up: bool) -> None:
        direction = "client to server" if up else "server to client"
        log.debug("TCP relay aborted (%s): %s", direction, exc)
        self.close(reset=True)

    def close(self, reset: bool) -> None:
        if self.closing:
            return
        self.closing = True
        # Watchers go before their descriptors do.
        self.upstream.close()
        self.downstream.close()
        if self.timer is not None:
            self.timer.close()
            self.timer = None
        close_both(self.client, self.server, reset)
        if self.on_end is not None:
            try:
                self.on_end(self.upstream.moved, self.downstream.moved)
            except Exception:
                log.exception("TCP relay end callback failed")

    # --- idle timeout -----------------------------------------------------------------------

    def _check_idle(self) -> None:
        if self.closing:
            return
        moved = self.upstream.moved + self.downstream.moved
        if moved != self.seen:
            self.seen = moved
            self.quiet = 0
            return
        self.quiet += 1
        if self.quiet >= _IDLE_CHECKS:
            log.debug("TCP relay idle for %g s: closing", self.idle_timeout)
            self.close(reset=False)
