"""Layer-4 TCP virtual services: pick a real server, connect, relay bytes."""

from __future__ import annotations

import contextlib
import logging
import socket

import gevent

from passerelle.engine.relay.tcp import connect, relay
from passerelle.engine.runtime.context import WorkerContext, client_ip
from passerelle.engine.runtime.pools import ServerRuntime
from passerelle.engine.runtime.services import ServiceRuntime
from passerelle.engine.stats.counters import ACTIVE, BYTES_IN, BYTES_OUT, FAILURES, TOTAL, WIDTH

log = logging.getLogger(__name__)

CONNECT_ATTEMPTS = 3  # a failed connect moves on to another server, a few times at most


def reset(sock: socket.socket) -> None:
    """Close with RST: for a client we cannot serve, as near to 'connection refused' as we get."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def handle_tcp(
    ctx: WorkerContext, service: ServiceRuntime, sock: socket.socket, peer: tuple
) -> None:
    vs = service.model
    row = ctx.row
    vs_base = service.slot * WIDTH
    if vs.max_connections and ctx.table.value(service.slot, ACTIVE) >= vs.max_connections:
        reset(sock)
        return
    row[vs_base + ACTIVE] += 1
    row[vs_base + TOTAL] += 1
    try:
        if service.tls_server is not None:
            with gevent.Timeout(vs.header_timeout):
                sock = service.tls_server.wrap_socket(sock, server_side=True)
        route = service.default_route
        pool = route.pool
        ip = client_ip(peer)
        key = pool.source_persist_key(ip)
        tried: list[ServerRuntime] = []
        upstream = None
        server = None
        for _ in range(CONNECT_ATTEMPTS):
            server = pool.choose(ip, key, exclude=tried)
            if server is None:
                break
            try:
                upstream = connect(server.address, server.port, vs.connect_timeout)
                break
            except OSError as exc:
                log.info("%s: connect to %s failed: %s", vs.name, server.key, exc)
                row[server.slot * WIDTH + FAILURES] += 1
                tried.append(server)
        if upstream is None or server is None:
            reset(sock)
            return
        if route.tls_client is not None:
            upstream = route.tls_client.wrap_socket(upstream, server_hostname=None)
        s_base = server.slot * WIDTH
        row[s_base + ACTIVE] += 1
        row[s_base + TOTAL] += 1

        def count(up: int, down: int) -> None:
            row[vs_base + BYTES_IN] += up
            row[vs_base + BYTES_OUT] += down
            row[s_base + BYTES_IN] += up
            row[s_base + BYTES_OUT] += down

        try:
            relay(sock, upstream, vs.idle_timeout, count)
        finally:
            row[s_base + ACTIVE] -= 1
    except (OSError, gevent.Timeout) as exc:
        log.debug("%s: connection from %s ended: %s", vs.name, peer, exc)
        sock.close()
    finally:
        row[vs_base + ACTIVE] -= 1
