"""Full TLS handshakes, one connection after another, each ended the way a client ends a
connection it is done with: ``python -m bench.handshake_client HOST PORT SECONDS``.

``openssl s_time -new`` is not used: it resets every connection (``SO_LINGER`` 0) right after
sending its Finished message. A server that sees the reset before it has read that message
(HAProxy checks the socket's error first) drops the connection and skips the end of the
handshake (checking the client's Finished, deriving the resumption secret, making and sending
two session tickets, ~13% of an ECDSA handshake's instructions), while a server that reads the
Finished first does all of it: the two were not doing the same work. Here every server
completes the handshake: the client half-closes (FIN) after its Finished, reads what the
server sends (its session tickets) until the server closes, then closes. Like ``s_time -new``
it never resumes a session, sends no server name and no ALPN, and lets OpenSSL choose the
rest (TLS 1.3, X25519).

Prints ``handshakes N tickets M``: M of the N connections received a session ticket, proof
that the server finished the handshake.
"""

from __future__ import annotations

import socket
import ssl
import sys
import time

CONNECT_TIMEOUT = 10.0


def client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the benchmark's certificates are self-signed
    return context


def handshake(context: ssl.SSLContext, address: tuple[str, int]) -> bool:
    """One full handshake; whether the server sent a session ticket before it closed."""
    raw = socket.create_connection(address, timeout=CONNECT_TIMEOUT)
    with context.wrap_socket(raw) as tls:
        # SSLSocket.shutdown would drop the TLS state first; the tickets still have to be read
        socket.socket.shutdown(tls, socket.SHUT_WR)
        try:
            while tls.recv(4096):
                pass
        except OSError:
            pass  # a server may reset instead of closing; the handshake was still complete
        session = tls.session
        return session is not None and session.has_ticket


def negotiated_version(host: str, port: int) -> str:
    """The protocol version one handshake with the server ends on (``TLSv1.3``, ...)."""
    raw = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    with client_context().wrap_socket(raw) as tls:
        return tls.version() or "none"


def run(host: str, port: int, seconds: float) -> tuple[int, int]:
    """(handshakes completed, of which the server sent a ticket) in ``seconds``."""
    context = client_context()
    deadline = time.monotonic() + seconds
    done = tickets = 0
    while time.monotonic() < deadline:
        tickets += handshake(context, (host, port))
        done += 1
    return done, tickets


def main(argv: list[str]) -> int:
    host, port, seconds = argv[0], int(argv[1]), float(argv[2])
    done, tickets = run(host, port, seconds)
    print(f"handshakes {done} tickets {tickets}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
