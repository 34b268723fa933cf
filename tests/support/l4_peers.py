"""Raw TCP real servers for L4 tests, and the client side of a connection through the engine."""

from __future__ import annotations

import socket
import ssl
import time

from gevent.server import StreamServer


class GreetingEcho:
    """Raw TCP real server: sends its name and a newline, then echoes until EOF, so a client
    knows which server it reached and can check that bytes still flow."""

    def __init__(self, name: str, tls: ssl.SSLContext | None = None) -> None:
        self.name = name
        kwargs = {"ssl_context": tls} if tls is not None else {}
        self.server = StreamServer(("127.0.0.1", 0), self._handle, **kwargs)

    def start(self) -> GreetingEcho:
        self.server.start()
        return self

    @property
    def port(self) -> int:
        return self.server.server_port

    def _handle(self, sock: socket.socket, peer: tuple) -> None:
        try:
            sock.sendall(self.name.encode() + b"\n")
            while data := sock.recv(65536):
                sock.sendall(data)
        except OSError:
            pass
        finally:
            sock.close()

    def stop(self) -> None:
        self.server.stop(timeout=0.5)


def greeted(port: int) -> tuple[socket.socket, str]:
    """A new connection through the engine and the name of the real server it reached."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    line = b""
    while not line.endswith(b"\n"):
        data = sock.recv(64)
        assert data, "the engine closed the connection before the server's greeting"
        line += data
    return sock, line.decode().strip()


def finish(sock: socket.socket) -> None:
    """Close cleanly and wait for the server's close, so the active counts are back down."""
    sock.shutdown(socket.SHUT_WR)
    while sock.recv(65536):
        pass
    sock.close()
    time.sleep(0.01)  # the engine's relay ends just after our side sees the close


def closed_without_data(sock: socket.socket) -> bool:
    try:
        return sock.recv(64) == b""
    except ConnectionResetError:
        return True


def refused(port: int) -> bool:
    """True when the engine closes or resets a new connection without relaying anything."""
    try:
        # The reset can even beat the end of connect() when the machine is busy.
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    except ConnectionResetError:
        return True
    try:
        return closed_without_data(sock)
    finally:
        sock.close()
