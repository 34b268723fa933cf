"""Layer-4 TCP relay between a client connection and a real server connection.

Two plain TCP sockets are joined with ``os.splice`` through one kernel pipe per direction, so
payload bytes never enter Python, from event-loop callbacks (spliced.py): no greenlet runs
while bytes flow. TLS sockets (or a kernel without splice) use a copy loop in greenlets
(copyloop.py).

Lifecycle: each direction ends at EOF (which is passed on as a half-close) or at an error,
which aborts the whole relay and resets both peers, so that a truncated stream never looks
like a complete one. The idle timeout closes both sides gracefully once no byte moved in
either direction for that long.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Callable

import gevent
from gevent import socket as gsocket
from gevent.event import AsyncResult
from gevent.ssl import SSLSocket as GeventSSLSocket

from passerelle.engine.relay import splice as pipes
from passerelle.engine.relay.copyloop import CopyRelay
from passerelle.engine.relay.spliced import SpliceRelay
from passerelle.engine.relay.tally import ByteTally

_IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)

OnEnd = Callable[[int, int], None]


def relay(
    client: socket.socket,
    server: socket.socket,
    idle_timeout: float,
    tally: ByteTally | None = None,
    *,
    zero_copy: bool = True,
) -> tuple[int, int]:
    """Copy bytes both ways until both directions end, then close both sockets.

    Returns ``(client_to_server_bytes, server_to_client_bytes)``; delivered bytes are also
    added to ``tally`` as they go. Never raises for network
    errors; a greenlet killed while waiting here resets both peers. An ``idle_timeout`` of
    zero or less disables the idle timeout. ``zero_copy=False`` forces the copy loop even where
    splice would apply.
    """
    if not (zero_copy and can_splice(client, server)):
        return CopyRelay(client, server, idle_timeout, tally).run()
    done: AsyncResult = AsyncResult()
    spliced = SpliceRelay(client, server, idle_timeout, tally, lambda *totals: done.set(totals))
    spliced.start()
    try:
        return done.get()
    except BaseException:
        spliced.abort()
        raise


def start_relay(
    client: socket.socket,
    server: socket.socket,
    idle_timeout: float,
    tally: ByteTally | None,
    on_end: OnEnd,
) -> None:
    """Relay in the background and return at once; the relay owns both sockets from now on.

    ``on_end(up, down)`` is called once, after both sockets are closed. The caller must keep
    nothing else from closing the sockets.
    """
    if can_splice(client, server):
        SpliceRelay(client, server, idle_timeout, tally, on_end).start()
        return

    def copy() -> None:
        up = down = 0
        try:
            up, down = CopyRelay(client, server, idle_timeout, tally).run()
        finally:
            on_end(up, down)

    gevent.spawn_raw(copy)


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
