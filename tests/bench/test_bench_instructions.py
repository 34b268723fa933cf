"""The instruction counter runs the engine (or HAProxy) under callgrind with the bench's back
ends and a client holding requests in flight, and reports instructions per request."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.instructions import Client, _content_length

REPO = Path(__file__).resolve().parents[2]


def test_an_answer_is_read_to_the_end_of_its_body() -> None:
    assert _content_length(b"HTTP/1.1 200 OK\r\nServer: x\r\ncontent-length: 3") == 3
    with pytest.raises(ConnectionError):
        _content_length(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked")


def test_the_client_keeps_its_requests_in_flight_and_reads_every_answer() -> None:
    # A server that answers only once every connection has sent: a client that waited for an
    # answer before sending on the next connection would hang here.
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    def serve() -> None:
        peers = [listener.accept()[0] for _ in range(3)]
        for _ in range(2):  # two rounds of three requests
            for peer in peers:
                data = b""
                while not data.endswith(b"\r\n\r\n"):
                    data += peer.recv(1024)
            for peer in peers:
                peer.sendall(answer[:20])
            for peer in peers:
                peer.sendall(answer[20:])
        for peer in peers:
            peer.close()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    client = Client(port, 3, "bench.test")
    for conn in client.connections:
        conn.settimeout(10)
    client.send(6)
    client.close()
    server.join(10)
    listener.close()
    assert not server.is_alive()


def _count(*arguments: str) -> str:
    if not all(shutil.which(tool) for tool in ("valgrind", "nginx", "haproxy")):
        pytest.skip("valgrind, nginx and haproxy are installed by scripts/setup")
    done = subprocess.run(
        [sys.executable, "-m", "bench.instructions", *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=380,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.timeout(400)
@pytest.mark.parametrize(("product", "who"), [("passerelle", "worker"), ("haproxy", "HAProxy")])
def test_the_instructions_per_request_are_counted(product: str, who: str) -> None:
    out = _count("--in-flight", "5", "--requests", "50,250", "--product", product)
    found = re.search(rf"l7, 5 in flight: ([\d,]+) {who} instructions per request", out)
    assert found, out
    # A proxied keep-alive request costs tens of thousands of instructions in either product;
    # a count far off that means the runs were not told apart or the wrong process was read.
    assert 10_000 < int(found.group(1).replace(",", "")) < 400_000, out


@pytest.mark.timeout(400)
def test_a_resumed_tls_connection_is_counted() -> None:
    out = _count("--scenario", "tls", "--requests", "20,60")
    pattern = r"tls, a new connection per request, session resumed: ([\d,]+) worker instructions"
    found = re.search(pattern, out)
    assert found, out
    # An abbreviated handshake still does a key exchange (X25519), hundreds of thousands of
    # instructions; the client refuses to report when no session was resumed.
    assert 100_000 < int(found.group(1).replace(",", "")) < 5_000_000, out
