"""Layer-4 TCP relay between a client connection and a real server connection.

Two plain TCP sockets are joined with ``os.splice`` through one kernel pipe per direction, so
payload bytes never enter Python. TLS sockets (or a kernel without splice) use a copy loop
through one reused buffer per direction.

Lifecycle: each direction ends at EOF (which is passed on as a half-close) or at an error,
which aborts the whole relay and resets both peers, so that a truncated stream never looks
like a complete one. The idle timeout closes both sides gracefully once no byte moved in
either direction for that long.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import ssl
import struct
from collections.abc import Callable
from time import monotonic

import gevent
from gevent import socket as gsocket
from gevent.hub import get_hub
from gevent.ssl import SSLSocket as GeventSSLSocket

from passerelle.engine.relay import splice as pipes

log = logging.getLogger(__name__)

_READ = 1
_WRITE = 2
_COPY_BUFFER = 64 * 1024
# Chunks moved in a row before a busy direction lets other connections run.
_BURST = 16
_RESET_LINGER = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST
_IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)

OnBytes = Callable[[int, int], None]


class _Aborted(Exception):
    """Thrown into a direction waiting on its socket when the relay is torn down."""


def relay(
    client: socket.socket,
    server: socket.socket,
    idle_timeout: float,
    on_bytes: OnBytes | None = None,
    *,
    zero_copy: bool = True,
) -> tuple[int, int]:
    """Copy bytes both ways until both directions end, then close both sockets.

    Returns ``(client_to_server_bytes, server_to_client_bytes)``. Never raises for network
    errors. An ``idle_timeout`` of zero or less disables the idle timeout. ``zero_copy=False``
    forces the copy loop even where splice would apply.
    """
    use_splice = zero_copy and can_splice(client, server)
    return _Relay(client, server, idle_timeout, on_bytes, use_splice).run()


def can_splice(client: socket.socket, server: socket.socket) -> bool:
    """Whether the zero-copy path applies: splice needs the kernel to see the payload bytes."""
    return (
        pipes.AVAILABLE
        and not isinstance(client, GeventSSLSocket | ssl.SSLSocket)
        and not isinstance(server, GeventSSLSocket | ssl.SSLSocket)
    )


def connect(address: str, port: int, timeout: float, source: str | None = None) -> socket.socket:
    """Open a gevent TCP connection to a literal IPv4/IPv6 address, with TCP_NODELAY.

    The returned socket is in blocking (cooperative) mode. Raises ``TimeoutError`` or another
    ``OSError`` whose message names the destination.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    where = f"[{address}]:{port}" if family == socket.AF_INET6 else f"{address}:{port}"
    try:
        # Literal addresses only: anything else would go through the resolver thread pool.
        socket.inet_pton(family, address)
    except OSError:
        message = f"cannot connect to {where}: not a literal IP address"
        raise OSError(errno.EINVAL, message) from None
    sock = gsocket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source is not None:
            # Pick the source port at connect() time, per destination: binding port 0 alone
            # would limit a source address to one connection per ephemeral port overall.
            sock.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source, 0))
        sock.settimeout(timeout)
        sock.connect((address, port))
        sock.settimeout(None)
        return sock
    except TimeoutError:
        sock.close()
        raise TimeoutError(f"connection to {where} timed out after {timeout:g} s") from None
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        via = f" from {source}" if source is not None else ""
        raise OSError(exc.errno, f"connection to {where}{via} failed: {reason}") from None


def _shutdown_write(sock: socket.socket) -> None:
    # TLS sockets: a TCP-level FIN, because SSLSocket.shutdown() drops the TLS state that the
    # other direction still reads through (Python offers no one-way close_notify).
    if isinstance(sock, GeventSSLSocket):
        gsocket.socket.shutdown(sock, socket.SHUT_WR)
    elif isinstance(sock, ssl.SSLSocket):
        socket.socket.shutdown(sock, socket.SHUT_WR)
    else:
        sock.shutdown(socket.SHUT_WR)


class _Relay:
    __slots__ = (
        "client",
        "closing",
        "down",
        "hub",
        "idle_timeout",
        "last_activity",
        "on_bytes",
        "reset",
        "server",
        "timer",
        "up",
        "use_splice",
        "watchers",
    )

    def __init__(
        self,
        client: socket.socket,
        server: socket.socket,
        idle_timeout: float,
        on_bytes: OnBytes | None,
        use_splice: bool,
    ) -> None:
        self.client = client
        self.server = server
        self.idle_timeout = idle_timeout
        self.on_bytes = on_bytes
        self.use_splice = use_splice
        self.hub = get_hub()
        self.up = 0
        self.down = 0
        self.closing = False
        self.reset = False
        self.last_activity = monotonic()
        self.timer = None
        self.watchers: list = []

    def run(self) -> tuple[int, int]:
        pump = self._splice_pump if self.use_splice else self._copy_pump
        if not self.use_splice:
            # The relay owns time-outs: a per-operation timeout would cut quiet directions.
            self.client.settimeout(None)
            self.server.settimeout(None)
        if self.idle_timeout > 0:
            self._arm_timer(self.idle_timeout)
        downstream = gevent.spawn(pump, self.server, self.client, False)
        try:
            try:
                pump(self.client, self.server, True)
                downstream.join()
            finally:
                if not downstream.dead:  # this greenlet is being killed
                    self._abort(reset=True)
                    downstream.join()
        finally:
            self._teardown()
        return self.up, self.down

    # --- directions -------------------------------------------------------------------------

    def _splice_pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        loop = self.hub.loop
        splice = os.splice
        flags = pipes.FLAGS
        writable = None
        pipe = None
        empty = True
        burst = 0
        drained = False
        try:
            src_fd = src.fileno()
            dst_fd = dst.fileno()
            readable = loop.io(src_fd, _READ)
            self.watchers.append(readable)
            while True:
                if drained:
                    # The last splice took less than a pipe's worth, so the socket had nothing
                    # more: wait at once instead of paying for a splice that fails with EAGAIN
                    # (a system call and an exception per message). A waiting direction holds
                    # no pipe: quiet long-lived connections would otherwise pin descriptors.
                    if pipe is not None:
                        pipes.release(pipe, True)
                        pipe = None
                    burst = 0
                    self._wait(readable)
                    drained = False
                if pipe is None:
                    pipe = pipes.acquire()
                try:
                    moved = splice(src_fd, pipe.write_fd, pipe.size, flags=flags)
                except BlockingIOError:
                    drained = True  # woken with nothing to read after all
                    continue
                if not moved:
                    break
                drained = moved < pipe.size
                empty = False
                pipe_out = pipe.read_fd
                left = moved
                while left:
                    try:
                        left -= splice(pipe_out, dst_fd, left, flags=flags)
                    except BlockingIOError:
                        if writable is None:
                            writable = loop.io(dst_fd, _WRITE)
                            self.watchers.append(writable)
                        self._wait(writable)
                empty = True
                self._count(moved, upstream)
                burst += 1
                if burst == _BURST:
                    burst = 0
                    self._wait(readable)  # returns on the next loop turn: bytes are waiting
            _shutdown_write(dst)
        except _Aborted:
            pass
        except OSError as exc:
            self._fail(exc, upstream)
        except Exception:
            log.exception("TCP relay direction failed")
            self._abort(reset=True)
        finally:
            if pipe is not None:
                pipes.release(pipe, empty)

    def _copy_pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
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
            _shutdown_write(dst)
        except _Aborted:
            pass
        except OSError as exc:
            if not self.closing:
                self._fail(exc, upstream)
        except Exception:
            log.exception("TCP relay direction failed")
            self._abort(reset=True)

    def _wait(self, watcher) -> None:
        # Checked on both sides: an abort may come before the first wait (the watcher did not
        # exist yet to be cancelled) or while this greenlet was already scheduled to resume.
        if self.closing:
            raise _Aborted
        self.hub.wait(watcher)
        if self.closing:
            raise _Aborted

    def _count(self, moved: int, upstream: bool) -> None:
        self.last_activity = monotonic()
        if upstream:
            self.up += moved
            if self.on_bytes is not None:
                self.on_bytes(moved, 0)
        else:
            self.down += moved
            if self.on_bytes is not None:
                self.on_bytes(0, moved)
        if self.closing:
            # A direction that never waits (steady traffic) still stops after an abort.
            raise _Aborted

    # --- teardown ---------------------------------------------------------------------------

    def _fail(self, exc: OSError, upstream: bool) -> None:
        direction = "client to server" if upstream else "server to client"
        log.debug("TCP relay aborted (%s): %s", direction, exc)
        self._abort(reset=True)

    def _abort(self, reset: bool) -> None:
        if self.closing:
            return
        self.closing = True
        self.reset = reset
        if self.use_splice:
            error = _Aborted()
            for watcher in self.watchers:
                self.hub.cancel_wait(watcher, error)
        else:
            # gevent wakes greenlets blocked on a socket that gets closed.
            self._close_sockets()

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

    def _close_sockets(self) -> None:
        for sock in (self.client, self.server):
            try:
                if self.reset:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_LINGER)
            except OSError:
                pass
            with contextlib.suppress(OSError):
                sock.close()

    def _teardown(self) -> None:
        if self.timer is not None:
            self.timer.close()
            self.timer = None
        for watcher in self.watchers:
            watcher.close()
        self.watchers.clear()
        self._close_sockets()
