"""The handshake client of the tls scenario lets the server finish every handshake: a real TLS
server on loopback sees each connection's handshake complete, sends its session tickets, and
then reads a plain end of input, never a reset. No speed is asserted."""

from __future__ import annotations

import contextlib
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from passerelle.engine.tls.certificates import make_self_signed

# The suite is a plain folder at the repository root (see test_bench_apply.py).
_ROOT = str(Path(__file__).resolve().parents[2])
sys.path.insert(0, _ROOT)
try:
    from bench.load import full_handshakes
finally:
    sys.path.remove(_ROOT)


class TicketServer:
    """Completes each handshake, then reads until the client's end of input, recording how
    each connection ended: "eof" (a close), "reset", or the handshake's error."""

    def __init__(self, folder: Path) -> None:
        cert_pem, key_pem = make_self_signed("bench.test", ["bench.test"])
        (folder / "cert.pem").write_text(cert_pem)
        (folder / "key.pem").write_text(key_pem)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.endings: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def stop(self) -> None:
        """Stop accepting, once the connection in hand (if any) is recorded."""
        with contextlib.suppress(OSError):  # already stopped
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.listener.close()
        self.thread.join(10)

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return  # listener closed
            self.endings.append(self._one(raw))

    def _one(self, raw: socket.socket) -> str:
        raw.settimeout(10)
        try:
            with self.context.wrap_socket(raw, server_side=True) as tls:
                # the handshake is done here, the session tickets written (TLS 1.3)
                return "eof" if tls.recv(1) == b"" else "data"
        except ConnectionResetError:
            return "reset"
        except (ssl.SSLError, OSError) as exc:
            return f"failed: {exc}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TicketServer]:
    running = TicketServer(tmp_path)
    running.thread.start()
    yield running
    running.stop()


@pytest.mark.timeout(60)
def test_every_handshake_is_finished_by_the_server_and_ends_in_a_close(
    server: TicketServer,
) -> None:
    done = full_handshakes(server.port, 1, None)

    assert done.count > 0
    assert done.with_ticket == done.count  # every server finished its side and sent tickets
    server.stop()
    assert server.endings == ["eof"] * done.count  # the client closed each one, no request
