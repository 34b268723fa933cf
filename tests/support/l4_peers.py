"""Raw TCP real servers for L4 tests."""

from __future__ import annotations

import socket
import ssl

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
