"""Quiet keep-alive client connections wait in the event loop with no greenlet (see
engine/http/lane.py) and carry on untouched when the client speaks again."""

from __future__ import annotations

import socket
import ssl
import time

from passerelle.engine.tls.certificates import make_self_signed

from support.http_peers import Stream, l7_service, shared_deployer

l7 = shared_deployer("quiet", workers=1)
QUIET = 1.0  # a pause between requests


def get(stream: Stream, path: str) -> int:
    stream.send(f"GET {path} HTTP/1.1\r\nHost: app.test\r\n\r\n".encode())
    return stream.response().status


def active(l7, name: str = "vs0") -> int:
    [service] = [s for s in l7.engine.stats() if s["name"] == name]
    return service["active"]


def wait_active(l7, wanted: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (now := active(l7)) != wanted:
        assert time.monotonic() < deadline, f"active connections stay at {now}, not {wanted}"
        time.sleep(0.05)


def test_a_quiet_connection_serves_its_next_requests(l7, servers):
    backend = servers.http("fe0")
    [port] = l7.deploy(l7_service(backend))
    clients = [Stream.connect(port) for _ in range(50)]
    for i, client in enumerate(clients):
        assert get(client, f"/first/{i}") == 200
    time.sleep(QUIET)
    assert active(l7) == 50  # quiet connections still count as open
    for round_ in range(2):
        for i, client in enumerate(clients):
            assert get(client, f"/again/{round_}/{i}") == 200
        time.sleep(QUIET)
    paths = [r["path"] for r in backend.seen]
    assert len(paths) == 150 and paths[-1] == "/again/1/49"
    for client in clients:
        client.close()
    wait_active(l7, 0)


def test_a_client_closing_while_quiet_is_let_go(l7, servers):
    backend = servers.http("fe0")
    [port] = l7.deploy(l7_service(backend))
    client = Stream.connect(port)
    assert get(client, "/") == 200
    time.sleep(QUIET)
    client.close()
    wait_active(l7, 0)


def test_the_idle_timeout_still_closes_a_quiet_connection(l7, servers):
    backend = servers.http("fe0")
    [port] = l7.deploy(l7_service(backend, idle_timeout=1.5))
    client = Stream.connect(port)
    assert get(client, "/") == 200
    started = time.monotonic()
    assert not client.closed_within(1.0), "closed before the idle timeout"
    assert client.closed_within(2.0), "still open well after the idle timeout"
    assert time.monotonic() - started >= 1.0
    wait_active(l7, 0)


def test_a_quiet_tls_connection_keeps_its_session(l7, servers):
    backend = servers.http("fe0")
    cert_pem, key_pem = make_self_signed("app.test", ["app.test"])
    [port] = l7.deploy(
        l7_service(backend, tls={"certificates": ["app"]}),
        certificates=[{"name": "app", "cert_pem": cert_pem, "key_pem": key_pem}],
    )
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    client = Stream(context.wrap_socket(raw, server_hostname="app.test"))
    assert get(client, "/before") == 200
    time.sleep(QUIET)
    assert get(client, "/after") == 200
    assert [r["path"] for r in backend.seen] == ["/before", "/after"]
    client.close()
    wait_active(l7, 0)
