"""Layer-4 TCP virtual services: pick a real server, connect, relay bytes."""

from __future__ import annotations

import contextlib
import logging
import socket

import gevent

from passerelle.engine.relay.ends import take_over
from passerelle.engine.relay.tcp import connect, start_relay
from passerelle.engine.runtime.context import WorkerContext, client_ip
from passerelle.engine.runtime.pools import ServerRuntime
from passerelle.engine.runtime.services import PoolRoute, ServiceRuntime
from passerelle.engine.stats.counters import ACTIVE, BYTES_IN, BYTES_OUT, FAILURES, TOTAL, WIDTH
from passerelle.engine.tls.contexts import server_hostname_for, server_name

log = logging.getLogger(__name__)

CONNECT_ATTEMPTS = 3  # a failed connect moves on to another server, a few times at most
_RESET_LINGER = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # SO_LINGER on, 0 s: close() sends RST


def reset(sock: socket.socket) -> None:
    """Close with RST: for a client we cannot serve, as near to 'connection refused' as we get."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_LINGER)
    sock.close()


def handle_tcp(
    ctx: WorkerContext, service: ServiceRuntime, sock: socket.socket, peer: tuple
) -> None:
    """Serve one client connection: connect it to a real server and start relaying.

    Returns once the relay runs: the relay lives in the event loop (or, for TLS, in a greenlet
    of its own) and gives the active counts back when it ends.
    """
    vs = service.model
    row = ctx.row
    vs_base = service.slot * WIDTH
    if vs.max_connections and ctx.table.value(service.slot, ACTIVE) >= vs.max_connections:
        reset(sock)
        return
    row[vs_base + ACTIVE] += 1
    row[vs_base + TOTAL] += 1
    relaying = False
    try:
        sni = None
        if service.tls_server is not None:
            with gevent.Timeout(vs.header_timeout):
                sock = service.tls_server.wrap_socket(sock, server_side=True)
            sni = server_name(sock)
        found = open_server(ctx, service, client_ip(peer), sni)
        if found is None:
            reset(sock)
            return
        server, upstream = found
        s_base = server.slot * WIDTH
        row[s_base + TOTAL] += 1

        def count(up: int, down: int) -> None:
            row[vs_base + BYTES_IN] += up
            row[vs_base + BYTES_OUT] += down
            row[s_base + BYTES_IN] += up
            row[s_base + BYTES_OUT] += down

        def ended(_up: int, _down: int) -> None:
            row[s_base + ACTIVE] -= 1
            row[vs_base + ACTIVE] -= 1

        try:
            start_relay(take_over(sock), upstream, vs.idle_timeout, count, ended)
        except BaseException:
            row[s_base + ACTIVE] -= 1
            upstream.close()
            raise
        relaying = True
    except (OSError, gevent.Timeout) as exc:
        log.debug("%s: connection from %s ended: %s", vs.name, peer, exc)
        sock.close()
    finally:
        if not relaying:
            row[vs_base + ACTIVE] -= 1


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
