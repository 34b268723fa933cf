"""Sending on the data plane without the general-purpose machinery of gevent's ``sendall``.

gevent's ``sendall`` asks the kernel for the send-buffer size and walks a memoryview in
chunks on every call; a proxied head or a small body nearly always fits the socket buffer in
one ``send()``. The first attempt therefore goes straight to the kernel, and only a partial
or refused send falls back to gevent's cooperative loop, which waits for the socket to drain.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from functools import partial

from gevent import socket as gsocket

Send = Callable[[bytes], None]


def send_all(sock: socket.socket, data: bytes) -> None:
    """``sock.sendall(data)`` that costs one system call when the data fits.

    A function rather than a closure per socket: a client connection that sends through it
    holds nothing for it while idle.
    """
    # Exactly gevent's plain TCP socket: a TLS socket's underlying _sock would bypass the
    # encryption, so TLS (and anything else) keeps its own sendall.
    if type(sock) is not gsocket.socket:
        sock.sendall(data)
        return
    try:
        sent = sock._sock.send(data)  # type: ignore[attr-defined]  # the kernel socket
    except BlockingIOError:
        sent = 0
    if sent < len(data):
        sock.sendall(memoryview(data)[sent:])


def sender(sock: socket.socket) -> Send:
    """A ``sendall`` for ``sock`` that costs one system call when the data fits."""
    if type(sock) is not gsocket.socket:
        return sock.sendall
    return partial(send_all, sock)
