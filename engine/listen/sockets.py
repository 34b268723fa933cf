"""Listening sockets shared by all workers through SO_REUSEPORT."""

from __future__ import annotations

import ipaddress
import socket

from gevent import socket as gsocket

BACKLOG = 4096
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # Linux value; Python 3.11 lacks the name


def _family(address: str) -> int:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def _reusable(family: int, kind: int) -> gsocket.socket:
    sock = gsocket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Every worker binds its own socket on the same address; the kernel spreads clients.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET:
        # A virtual address need not be up yet on this host (HA standby, VIP being added).
        sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
    return sock


def tcp_listener(address: str, port: int) -> gsocket.socket:
    sock = _reusable(_family(address), socket.SOCK_STREAM)
    # Accepted sockets inherit it: without it Nagle holds a response body back until the
    # client acknowledges the head, which delayed ACK stretches to ~40 ms per response.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((address, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def udp_listener(address: str, port: int) -> gsocket.socket:
    sock = _reusable(_family(address), socket.SOCK_DGRAM)
    try:
        sock.bind((address, port))
    except OSError:
        sock.close()
        raise
    return sock
