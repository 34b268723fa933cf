"""Sending on the data plane without the general-purpose machinery of gevent's ``sendall``.

gevent's ``sendall`` asks the kernel for the send-buffer size and walks a memoryview in
chunks on every call; a proxied head or a small body nearly always fits the socket buffer in
one ``send()``. The first attempt therefore goes straight to the kernel, and only a partial
or refused send falls back to gevent's cooperative loop, which waits for the socket to drain.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from gevent import socket as gsocket

Send = Callable[[bytes], None]


def sender(sock: socket.socket) -> Send:
    """A ``sendall`` for ``sock`` that costs one system call when the data fits."""
    # Exactly gevent's plain TCP socket: a TLS socket's underlying _sock would bypass the
    # encryption, so TLS (and anything else) keeps its own sendall.
    if type(sock) is not gsocket.socket:
        return sock.sendall
    raw_send = sock._sock.send  # the non-blocking kernel socket under gevent's wrapper
    slow_sendall = sock.sendall

    def send_all(data: bytes) -> None:
        try:
            sent = raw_send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            slow_sendall(memoryview(data)[sent:])

    return send_all
