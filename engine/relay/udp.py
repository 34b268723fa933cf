"""UDP virtual service: per-client sessions to real servers.

Each client address (ip, port) gets its own upstream socket, connected to the real server
chosen when its first datagram arrived, so the server's replies can be matched back to the
client and sent from the service address. A session ends after ``idle_timeout`` without a
datagram in either direction, or when the real server answers with ICMP port unreachable.

All socket calls are non-blocking and woken by the service's own event-loop watchers: replies
are forwarded straight from the watcher callback, so a session costs one socket and one
watcher, not a greenlet.
"""

from __future__ import annotations

import _socket
import errno
import logging
import os
import socket
from collections.abc import Callable
from time import monotonic

import gevent
from gevent.hub import get_hub

log = logging.getLogger(__name__)

Chooser = Callable[[str], tuple[str, int] | None]
OnSession = Callable[[str, tuple[str, int]], None]
OnBytes = Callable[[int, int, tuple[str, int]], None]  # up, down, real server

MAX_SESSIONS = 65536
_DATAGRAM_MAX = 65536
_BATCH = 64  # datagrams handled in a row before the loop lets other work run
_TRANSIENT_ERRORS = frozenset(
    {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EINTR, errno.ENOBUFS}
)


class _Session:
    __slots__ = ("client", "last_activity", "server", "upstream", "watcher")

    def __init__(self, client: tuple, server: tuple[str, int], upstream: _socket.socket) -> None:
        self.client = client
        self.server = server
        self.upstream = upstream
        self.watcher = None
        self.last_activity = monotonic()


def _label(client: tuple) -> str:
    host, port = client[0], client[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class UdpService:
    """One UDP virtual service listener: each client address gets its own upstream socket
    connected to the real server chosen for it; replies go back to the client from the
    service address; sessions expire after idle_timeout.

    ``stop()`` closes ``sock`` too: a bound SO_REUSEPORT socket left open would keep taking
    its share of the port's datagrams, unread, once another listener binds the same port
    (a reload). The service works on a duplicate of the descriptor, so it never changes the
    blocking mode of ``sock``.
    """

    def __init__(
        self,
        sock: socket.socket,
        choose: Chooser,
        idle_timeout: float,
        on_session: OnSession | None = None,
        on_bytes: OnBytes | None = None,
        max_sessions: int = MAX_SESSIONS,
        on_close: OnSession | None = None,
    ) -> None:
        self._sock = sock
        self._choose = choose
        self._idle_timeout = idle_timeout
        self._on_session = on_session
        self._on_bytes = on_bytes
        self._on_close = on_close
        self._max_sessions = max_sessions
        self._sessions: dict[tuple, _Session] = {}
        self._io: _socket.socket | None = None
        self._receiver: gevent.Greenlet | None = None
        self._sweeper: gevent.Greenlet | None = None
        self._hub = get_hub()
        # Separate buffers: the receive loop and reply callbacks interleave.
        self._request_buffer = bytearray(_DATAGRAM_MAX)
        self._reply_buffer = bytearray(_DATAGRAM_MAX)
        self._reply_view = memoryview(self._reply_buffer)
        self.dropped = 0  # datagrams not forwarded: no server, session limit, full buffers

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    def start(self) -> None:
        """Spawn the receive loop and the idle-session sweeper."""
        if self._receiver is not None:
            return
        # Plain kernel socket: every call here is non-blocking and woken by our own watcher.
        io = _socket.socket(fileno=os.dup(self._sock.fileno()))
        io.setblocking(False)
        self._io = io
        self._receiver = gevent.spawn(self._receive_loop, io)
        self._sweeper = gevent.spawn(self._sweep_loop)

    def stop(self) -> None:
        """Close all sessions, stop receiving and close the listening socket."""
        for greenlet in (self._receiver, self._sweeper):
            if greenlet is not None:
                greenlet.kill()
        self._receiver = self._sweeper = None
        for session in list(self._sessions.values()):
            self._close_session(session)
        if self._io is not None:
            self._io.close()
            self._io = None
        self._sock.close()

    def set_idle_timeout(self, seconds: float) -> None:
        self._idle_timeout = seconds

    def set_chooser(self, choose: Chooser) -> None:
        """Applies to new sessions only: existing ones keep their real server."""
        self._choose = choose

    # --- client -> real server ----------------------------------------------------------------

    def _receive_loop(self, io: _socket.socket) -> None:
        watcher = self._hub.loop.io(io.fileno(), 1)
        buffer = self._request_buffer
        view = memoryview(buffer)
        recvfrom_into = io.recvfrom_into
        sessions = self._sessions
        burst = 0
        try:
            while True:
                if burst == _BATCH:
                    # A flood never leaves the socket empty: yield to replies and other
                    # services anyway (the watcher fires on the next loop turn).
                    burst = 0
                    self._hub.wait(watcher)
                burst += 1
                try:
                    size, client = recvfrom_into(buffer)
                except BlockingIOError:
                    burst = 0
                    self._hub.wait(watcher)
                    continue
                except OSError as exc:
                    if exc.errno in _TRANSIENT_ERRORS:
                        continue
                    log.warning("UDP service stopped receiving: %s", exc)
                    return
                try:
                    self._forward(sessions.get(client), client, view[:size])
                except Exception:
                    # A failing callback must not stop the whole service.
                    log.exception("UDP datagram from %s not forwarded", _label(client))
        finally:
            watcher.close()

    def _forward(self, session: _Session | None, client: tuple, data: memoryview) -> None:
        if session is None:
            session = self._open_session(client)
            if session is None:
                self.dropped += 1
                return
        session.last_activity = monotonic()
        try:
            session.upstream.send(data)
        except BlockingIOError:
            self.dropped += 1
            return
        except OSError as exc:
            # Typically ECONNREFUSED: an ICMP port unreachable for an earlier datagram.
            log.debug("UDP session %s closed: %s", _label(client), exc)
            self.dropped += 1
            self._close_session(session)
            return
        if self._on_bytes is not None:
            self._on_bytes(len(data), 0, session.server)

    def _open_session(self, client: tuple) -> _Session | None:
        if len(self._sessions) >= self._max_sessions:
            return None  # a flood of (possibly spoofed) sources must not exhaust descriptors
        try:
            server = self._choose(client[0])
        except Exception:
            log.exception("UDP real server selection failed")
            return None
        if server is None:
            return None
        address, port = server
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            upstream = _socket.socket(family, socket.SOCK_DGRAM)
        except OSError as exc:
            log.debug("UDP session for %s not opened: %s", _label(client), exc)
            return None
        try:
            upstream.setblocking(False)
            upstream.connect((address, port))
        except OSError as exc:
            upstream.close()
            log.debug("UDP session to %s:%s not opened: %s", address, port, exc)
            return None
        session = _Session(client, server, upstream)
        watcher = self._hub.loop.io(upstream.fileno(), 1)
        watcher.start(self._on_reply, session)
        session.watcher = watcher
        self._sessions[client] = session
        if self._on_session is not None:
            self._on_session(_label(client), server)
        return session

    # --- real server -> client ----------------------------------------------------------------

    def _on_reply(self, session: _Session) -> None:
        # Runs in the hub: must neither block nor raise.
        try:
            self._forward_replies(session)
        except Exception:
            log.exception("UDP reply forwarding failed")
            self._close_session(session)

    def _forward_replies(self, session: _Session) -> None:
        recv_into = session.upstream.recv_into
        io = self._io
        if io is None:
            return
        buffer = self._reply_buffer
        view = self._reply_view
        for _ in range(_BATCH):
            try:
                size = recv_into(buffer)
            except BlockingIOError:
                return
            except OSError as exc:
                # ECONNREFUSED: ICMP port unreachable, nothing listens on the real server.
                log.debug("UDP session %s closed: %s", _label(session.client), exc)
                self._close_session(session)
                return
            session.last_activity = monotonic()
            try:
                io.sendto(view[:size], session.client)
            except OSError:
                self.dropped += 1
                continue
            if self._on_bytes is not None:
                self._on_bytes(0, size, session.server)

    # --- expiry -------------------------------------------------------------------------------

    def _sweep_loop(self) -> None:
        while True:
            gevent.sleep(max(0.01, min(1.0, self._idle_timeout / 2)))
            oldest = monotonic() - self._idle_timeout
            expired = [s for s in self._sessions.values() if s.last_activity <= oldest]
            for session in expired:
                self._close_session(session)

    def _close_session(self, session: _Session) -> None:
        if self._sessions.get(session.client) is session:
            del self._sessions[session.client]
            if self._on_close is not None:
                self._on_close(_label(session.client), session.server)
        if session.watcher is not None:
            session.watcher.close()
            session.watcher = None
        session.upstream.close()
