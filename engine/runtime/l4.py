"""Layer-4 TCP virtual services: pick a real server, connect, relay bytes."""

from __future__ import annotations

import contextlib
import logging
import socket

import gevent
from gevent import socket as gsocket

from passerelle.engine.relay.tally import ByteTally
from passerelle.engine.relay.tcp import connect, start_relay
from passerelle.engine.runtime.context import WorkerContext, client_ip
from passerelle.engine.runtime.pools import PoolRoute, ServerRuntime
from passerelle.engine.runtime.services import ServiceRuntime
from passerelle.engine.stats.counters import ACTIVE, BYTES_IN, BYTES_OUT, FAILURES, TOTAL, WIDTH
from passerelle.engine.tls.contexts import server_hostname_for, server_name
from passerelle.engine.tls.handshake import ClientHandshake, accepted_socket

log = logging.getLogger(__name__)

CONNECT_ATTEMPTS = 3  # a failed connect moves on to another server, a few times at most
_RESET_LINGER = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # SO_LINGER on, 0 s: close() sends RST


def reset(sock: socket.socket) -> None:
    """Close with RST: for a client we cannot serve, as near to 'connection refused' as we get."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_LINGER)
    sock.close()


def accept_tcp(
    ctx: WorkerContext, service: ServiceRuntime, fd: int, family: int, peer: tuple
) -> None:
    """A new client connection on descriptor ``fd``, in the event loop.

    Over the service's connection limit it is reset at once. With TLS offload the handshake
    runs from callbacks first (``engine/tls/handshake.py``); then a greenlet dials a real
    server and starts the relay (``handle_tcp``).
    """
    vs = service.model
    if vs.max_connections and ctx.table.value(service.slot, ACTIVE) >= vs.max_connections:
        reset(gsocket.socket(family, socket.SOCK_STREAM, fileno=fd))
        return
    row = ctx.row
    vs_base = service.slot * WIDTH
    sock = accepted_socket(fd, family, service.tls_server)
    # Counted from here: a connection in its handshake counts against the limit.
    row[vs_base + ACTIVE] += 1
    row[vs_base + TOTAL] += 1
    if service.tls_server is None:
        gevent.spawn(handle_tcp, ctx, service, sock, peer)
        return

    def handshake_done() -> None:
        gevent.spawn(handle_tcp, ctx, service, sock, peer)

    def handshake_failed(reason: str) -> None:
        log.debug("%s: TLS handshake with %s failed: %s", vs.name, peer, reason)
        row[vs_base + ACTIVE] -= 1
        sock.close()

    ClientHandshake(sock, vs.header_timeout, handshake_done, handshake_failed)


def handle_tcp(
    ctx: WorkerContext, service: ServiceRuntime, sock: socket.socket, peer: tuple
) -> None:
    """Connect a counted client connection (past its TLS handshake, if any) to a real server
    and start relaying.

    Returns once the relay runs: the relay lives in the event loop (or, for TLS, in a greenlet
    of its own), owns the sockets and gives the active counts back when it ends.
    """
    vs = service.model
    row = ctx.row
    vs_base = service.slot * WIDTH
    relaying = False
    try:
        sni = server_name(sock) if service.tls_server is not None else None
        found = open_server(ctx, service, client_ip(peer), sni)
        if found is None:
            reset(sock)
            return
        server, upstream = found
        s_base = server.slot * WIDTH
        row[s_base + TOTAL] += 1

        # Bytes are added to the service's and the server's counters as they are delivered.
        tally = ByteTally(
            ctx.counts,
            (vs_base + BYTES_IN, s_base + BYTES_IN),
            (vs_base + BYTES_OUT, s_base + BYTES_OUT),
        )

        def ended(_up: int, _down: int) -> None:
            row[s_base + ACTIVE] -= 1
            row[vs_base + ACTIVE] -= 1

        try:
            start_relay(sock, upstream, vs.idle_timeout, tally, ended)
        except BaseException:
            row[s_base + ACTIVE] -= 1
            upstream.close()
            raise
        relaying = True
    except (OSError, gevent.Timeout) as exc:
        log.debug("%s: connection from %s ended: %s", vs.name, peer, exc)
    finally:
        if not relaying:  # the relay owns the socket once it runs; until then, this does
            row[vs_base + ACTIVE] -= 1
            sock.close()


def open_server(
    ctx: WorkerContext, service: ServiceRuntime, ip: str, sni: str | None
) -> tuple[ServerRuntime, socket.socket] | None:
    """A ready server connection for client ``ip``, or None when no server could be reached.

    The chosen server's active count is taken before connecting and kept on success (the caller
    gives it back): connect() and the TLS handshake yield, and meanwhile this worker's other new
    connections must see the server as busy, or a burst would overshoot its connection limit
    and pile onto the least-loaded server.
    """
    vs = service.model
    route = service.default_route
    pool = route.pool
    row = ctx.row
    key = pool.source_persist_key(ip)
    tried: list[ServerRuntime] = []
    for _ in range(CONNECT_ATTEMPTS):
        server = pool.choose(ip, key, exclude=tried)
        if server is None:
            return None
        row[server.slot * WIDTH + ACTIVE] += 1
        try:
            upstream = connect(server.address, server.port, vs.connect_timeout)
            if route.tls_client is not None:
                upstream = _reencrypt(route, upstream, server, sni, vs.connect_timeout)
            return server, upstream
        except OSError as exc:  # ssl.SSLError included: a failed handshake is a failed server
            row[server.slot * WIDTH + ACTIVE] -= 1
            row[server.slot * WIDTH + FAILURES] += 1
            log.info("%s: connect to %s failed: %s", vs.name, server.key, exc)
            tried.append(server)
    return None


def _reencrypt(
    route: PoolRoute,
    upstream: socket.socket,
    server: ServerRuntime,
    sni: str | None,
    timeout: float,
) -> socket.socket:
    assert route.tls_client is not None and route.reencrypt is not None
    # There is no Host at layer 4; the name the client asked the offload for stands in for it.
    hostname = server_hostname_for(route.reencrypt, sni, server.address)
    try:
        upstream.settimeout(timeout)  # the handshake must not outlast the connect timeout
        wrapped = route.tls_client.wrap_socket(upstream, server_hostname=hostname)
    except OSError:
        upstream.close()
        raise
    wrapped.settimeout(None)
    return wrapped
