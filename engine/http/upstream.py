"""Connections from the engine to real servers, and the per-worker pool of idle ones.

A pooled connection is only ever handed to one request at a time. A connection that carried
NTLM/Negotiate authentication never comes back here: it stays pinned to its client connection,
because those schemes authenticate the TCP connection, not the request.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from typing import Any, Final

from gevent import monkey
from gevent.hub import get_hub

from passerelle.engine.http.codec import ResponseReader
from passerelle.engine.http.sockio import Send, sender
from passerelle.engine.relay.tcp import connect
from passerelle.engine.runtime.pools import ServerRuntime

# Idle connections kept per server and worker: at least as many as requests run at once to
# one server (every client of a persistent pool may be on one), or each request past the
# cap would pay for a new connection. HAProxy keeps them without limit by default.
MAX_IDLE_PER_SERVER: Final = 1024
# Seconds an idle pooled connection may wait; servers often close at 60 s.
IDLE_LIFETIME: Final = 30.0

PoolKey = str  # runtime.pools.connection_pool_key: address, port, TLS, server name sent
_monotonic: Final = time.monotonic  # held in C when compiled: no module lookup per call
_READ: Final = 1


class ServerFailed(Exception):
    """The real server failed mid-request; ``retryable`` when nothing was sent or received."""

    def __init__(self, message: str, retryable: bool = False, status: int = 502) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status  # what the client is told, if it has not had a response yet


class ResponseListener:
    """What a lane is to the server connection its request went out on: told when the
    server sends something (see ServerConnection.watch)."""

    __slots__ = ()

    def server_readable(self) -> None:
        raise NotImplementedError


class ServerConnection:
    __slots__ = (
        "closed",
        "fd",
        "idle_since",
        "key",
        "listener",
        "reader",
        "reused",
        "send",
        "server",
        "sock",
        "timeout",
        "tls",
        "watcher",
        "watching",
    )

    def __init__(self, sock: socket.socket, server: ServerRuntime, key: PoolKey) -> None:
        self.sock = sock
        self.fd = sock.fileno()  # for the lane's reads and writes on a plain connection
        self.send: Send = sender(sock)
        self.server = server
        self.key = key
        self.reader = ResponseReader()
        self.reused = False
        self.idle_since = 0.0
        self.timeout: float | None = None  # what sock.settimeout() was last given
        self.closed = False
        self.tls = getattr(sock, "_sslobj", None)  # OpenSSL's connection, for TLS to the server
        # The lane's read watcher, with the connection itself as its callback. It stays
        # started while the connection waits in the pool (see drop_idle): stopping and
        # restarting it, or giving it another callback, per request would cost system calls
        # and calls into gevent. Who is told of input is ``listener``: a lane, or nobody.
        self.watcher: Any = None  # gevent's io watcher, untyped
        self.watching = False
        self.listener: ResponseListener | None = None

    def recv(self, size: int, timeout: float) -> bytes:
        if timeout != self.timeout:
            self.sock.settimeout(timeout)
            self.timeout = timeout
        return self.sock.recv(size)

    def watch(self, listener: ResponseListener) -> None:
        """Have the event loop tell ``listener`` whenever the server sends something."""
        self.listener = listener
        if not self.watching:
            watcher = self.watcher
            if watcher is None:
                watcher = self.watcher = get_hub().loop.io(self.fd, _READ)
            watcher.start(self)
            self.watching = True

    def release(self) -> None:
        """The exchange is over: input from now on, in the pool, ends the connection."""
        self.listener = None

    def unwatch(self) -> None:
        """Stop the lane's watcher: a greenlet is about to wait on the socket itself."""
        self.listener = None
        if self.watcher is not None:
            self.watcher.stop()
        self.watching = False

    def __call__(self) -> None:
        """The socket is readable: the watcher's callback (a bound method would be one more
        object per pooled connection)."""
        listener = self.listener
        if listener is None:
            self.drop_idle()
        else:
            listener.server_readable()

    def drop_idle(self) -> None:
        """Input on an idle pooled connection is its end: EOF, a reset or junk.

        Over TLS it may also be a handshake message (a TLS 1.3 session ticket sent late),
        which OpenSSL takes in without yielding data: the connection then stays.
        """
        tls = self.tls
        if tls is not None:
            try:
                tls.read(1)
            except ssl.SSLWantReadError:
                return
            except (OSError, ValueError):
                pass
        self.close()

    def close(self) -> None:
        self.closed = True
        self.listener = None
        self.watching = False
        watcher = self.watcher
        if watcher is not None:
            # Before the descriptor goes: the loop must not watch a number the kernel reuses.
            watcher.stop()
            watcher.close()
            self.watcher = None
        with contextlib.suppress(OSError):
            self.sock.close()


def open_connection(
    server: ServerRuntime,
    timeout: float,
    tls: ssl.SSLContext | None,
    sni: str | None,
    key: PoolKey,
) -> ServerConnection:
    sock = connect(server.address, server.port, timeout)
    if tls is not None:
        try:
            sock.settimeout(timeout)
            sock = tls.wrap_socket(sock, server_hostname=sni)
            sock.settimeout(None)
        except (OSError, ValueError):
            sock.close()
            raise
    return ServerConnection(sock, server, key)


# The kernel's select with a zero timeout: gevent's patched one would spin the hub for nothing.
_poll_now: Final = monkey.get_original("select", "select")


def _looks_alive(sock: socket.socket) -> bool:
    """An idle connection must have nothing to read: readable means EOF, reset or junk."""
    try:
        readable, _, _ = _poll_now([sock.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


class IdlePool:
    """Idle keep-alive connections to real servers, most recently used first."""

    # Lists, not deques: compiled, a list's pop and append are C calls, a deque's are method
    # lookups. Only the rare trims at the old end pay for shifting.
    def __init__(self) -> None:
        self._idle: dict[PoolKey, list[ServerConnection]] = {}

    def get(self, key: PoolKey, *, probe: bool = True) -> ServerConnection | None:
        """The most recently used idle connection for ``key``.

        ``probe=False`` skips the liveness check (a system call) for requests that may be
        sent again on a fresh connection if the server closed this one while it sat idle.
        """
        queue = self._idle.get(key)
        if not queue:
            return None
        now = _monotonic()
        while queue:
            conn = queue.pop()
            if conn.closed:
                continue
            if now - conn.idle_since < IDLE_LIFETIME and (not probe or _looks_alive(conn.sock)):
                conn.reused = True
                return conn
            conn.close()
        return None

    def put(self, conn: ServerConnection) -> None:
        queue = self._idle.get(conn.key)
        if queue is None:
            queue = self._idle[conn.key] = []
        elif len(queue) >= MAX_IDLE_PER_SERVER:
            queue.pop(0).close()
        conn.idle_since = _monotonic()
        if not conn.reader.between_messages():
            conn.reader = ResponseReader()
        queue.append(conn)

    def sweep(self) -> None:
        """Close connections idle for too long (called periodically by the worker)."""
        now = _monotonic()
        for key, queue in list(self._idle.items()):
            expired = 0  # the oldest come first
            while expired < len(queue) and now - queue[expired].idle_since >= IDLE_LIFETIME:
                queue[expired].close()
                expired += 1
            del queue[:expired]
            if not queue:
                del self._idle[key]

    def close_all(self) -> None:
        for queue in self._idle.values():
            for conn in queue:
                conn.close()
        self._idle.clear()
