"""The two ends of a TCP relay: passing a half-close on, closing, resetting."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct

from gevent import socket as gsocket
from gevent.ssl import SSLSocket as GeventSSLSocket

RESET_LINGER = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


def shutdown_write(sock: socket.socket) -> None:
    """Pass an end of stream on: no more bytes will be written to ``sock``."""
    # TLS sockets: a TCP-level FIN, because SSLSocket.shutdown() drops the TLS state that the
    # other direction still reads through (Python offers no one-way close_notify).
    if isinstance(sock, GeventSSLSocket):
        gsocket.socket.shutdown(sock, socket.SHUT_WR)
    elif isinstance(sock, ssl.SSLSocket):
        socket.socket.shutdown(sock, socket.SHUT_WR)
    else:
        sock.shutdown(socket.SHUT_WR)


def close_both(client: socket.socket, server: socket.socket, reset: bool) -> None:
    """Close both ends; with ``reset``, as an RST, so that a cut stream never looks complete."""
    for sock in (client, server):
        if reset:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_LINGER)
        with contextlib.suppress(OSError):
            sock.close()
