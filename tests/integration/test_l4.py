"""Layer-4 TCP and UDP virtual services through the real engine (2 workers)."""

from __future__ import annotations

import os
import socket
import ssl
import struct
import time

import gevent
import pytest
from gevent.server import DatagramServer

from passerelle.engine.tls.certificates import Authority

from support.engine import TCP_HEALTH, free_port, shared_engine
from support.l4_peers import GreetingEcho, closed_without_data, finish, greeted, refused

engine = shared_engine()


class UdpEcho:
    """UDP real server: answers ``name|engine-side port|datagram``, so a test sees its session."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.server = DatagramServer(("127.0.0.1", 0), self._handle)

    def start(self) -> UdpEcho:
        self.server.start()
        return self

    @property
    def port(self) -> int:
        return self.server.server_port

    def _handle(self, data: bytes, peer: tuple) -> None:
        self.server.sendto(f"{self.name}|{peer[1]}|".encode() + data, peer)

    def stop(self) -> None:
        self.server.stop(timeout=0.5)


@pytest.fixture
def started():
    """Stops what the test started (echo servers), whatever the outcome."""
    items: list[GreetingEcho | UdpEcho] = []

    def add(item):
        items.append(item.start())
        return item

    yield add
    for item in items:
        item.stop()


def tcp_service(name: str, port: int, ports: list[int], health: dict = TCP_HEALTH, **extra) -> dict:
    return {
        "virtual_services": [
            {
                "name": name,
                "address": "127.0.0.1",
                "ports": [port],
                "mode": "l4",
                "health_check": health,
                "real_servers": [{"address": "127.0.0.1", "port": p} for p in ports],
                **extra,
            }
        ]
    }


def test_tcp_relays_a_megabyte_both_ways_intact(engine, started):
    echo = started(GreetingEcho("e"))
    port = free_port()
    engine.apply(tcp_service("bulk", port, [echo.port]))
    sock, name = greeted(port)
    assert name == "e"
    payload = os.urandom(1 << 20)
    sender = gevent.spawn(sock.sendall, payload)
    received = bytearray()
    while len(received) < len(payload):
        data = sock.recv(1 << 16)
        assert data, f"stream ended after {len(received)} bytes"
        received += data
    sender.get()
    assert received == payload
    sock.shutdown(socket.SHUT_WR)  # a half-close travels through, and the server's close back
    assert sock.recv(64) == b""
    sock.close()
    deadline = time.monotonic() + 3
    while (row := engine.stats()[0])["active"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert row["active"] == 0
    assert row["bytes_in"] == len(payload)
    assert row["bytes_out"] == len(payload) + len(b"e\n")
    server = engine.server_stats("bulk", f"127.0.0.1:{echo.port}")
    assert (server["bytes_in"], server["bytes_out"]) == (row["bytes_in"], row["bytes_out"])


def test_idle_timeout_closes_a_silent_connection(engine, started):
    echo = started(GreetingEcho("e"))
    port = free_port()
    engine.apply(tcp_service("idle", port, [echo.port], idle_timeout=1))
    sock, _ = greeted(port)
    since = time.monotonic()
    assert closed_without_data(sock)
    silent = time.monotonic() - since
    assert 0.5 <= silent <= 3.0, silent
    sock.close()
    # Traffic restarts the clock: a connection that talks every 0.4 s outlives the timeout.
    sock, _ = greeted(port)
    for i in range(5):
        time.sleep(0.4)
        sock.sendall(b"ping%d" % i)
        assert sock.recv(64) == b"ping%d" % i
    sock.close()


def test_a_server_that_refuses_is_skipped(engine, started):
    echo = started(GreetingEcho("alive"))
    dead = free_port()
    port = free_port()
    # No health check: only the failed connect can tell the engine that 'dead' is dead.
    engine.apply(tcp_service("skip", port, [dead, echo.port], health={"type": "none"}))
    for _ in range(10):
        sock, name = greeted(port)
        assert name == "alive"
        sock.close()
    assert engine.server_stats("skip", f"127.0.0.1:{dead}")["failures"] >= 1


def test_all_servers_down_closes_the_client_at_once(engine):
    dead = [free_port(), free_port()]
    checked, unchecked = free_port(), free_port()
    engine.apply(
        {
            "virtual_services": [
                *tcp_service("down", checked, dead)["virtual_services"],
                *tcp_service("unchecked", unchecked, dead, health={"type": "none"})[
                    "virtual_services"
                ],
            ]
        }
    )
    engine.wait_health("down", f"127.0.0.1:{dead[0]}", "down")
    for port in (checked, unchecked):
        for _ in range(3):
            since = time.monotonic()
            assert refused(port)
            assert time.monotonic() - since < 2.0  # not after connect_timeout (5 s)


def test_udp_sessions_per_client_reply_from_the_vip_and_expire(engine, started):
    echoes = [started(UdpEcho(f"u{i}")) for i in range(2)]
    vip = "127.0.64.1"
    port = free_port(vip, socket.SOCK_DGRAM)
    engine.apply(
        {
            "virtual_services": [
                {
                    "name": "udp",
                    "address": vip,
                    "ports": [port],
                    "protocol": "udp",
                    "mode": "l4",
                    "idle_timeout": 1,
                    "health_check": {"type": "none"},
                    "real_servers": [{"address": "127.0.0.1", "port": e.port} for e in echoes],
                }
            ]
        }
    )
    clients = []
    for i in (1, 2):
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind((f"127.0.63.{i}", 0))
        client.settimeout(3)
        clients.append(client)

    def exchange(client: socket.socket, data: bytes) -> tuple[str, int]:
        client.sendto(data, (vip, port))
        reply, source = client.recvfrom(2048)
        assert source == (vip, port)  # from the service address, not the real server's
        name, session_port, echoed = reply.split(b"|", 2)
        assert echoed == data
        return name.decode(), int(session_port)

    sessions = [exchange(c, b"first %d" % i) for i, c in enumerate(clients)]
    assert sessions[0][1] != sessions[1][1]  # one upstream socket per client
    for _ in range(3):
        for i, client in enumerate(clients):
            # Datagrams within the idle timeout stay in their session (same server, same socket).
            assert exchange(client, b"again %d" % i) == sessions[i]
            time.sleep(0.1)
    time.sleep(1.8)  # idle timeout 1 s plus the sweep's half-second period
    renewed = exchange(clients[0], b"after idle")
    assert renewed[1] != sessions[0][1]
    assert next(s for s in engine.stats() if s["name"] == "udp")["total"] == 3
    for client in clients:
        client.close()


def _greeting_and_echo_over_tls(
    port: int, context: ssl.SSLContext, name: str, payload: bytes
) -> tuple[bytes, bytes]:
    """Through a TLS offload to a GreetingEcho: (the greeting, the echo of ``payload``)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls_sock,
    ):
        greeting = tls_sock.recv(64)
        tls_sock.sendall(payload)
        return greeting, tls_sock.recv(64)


def test_tcp_reencrypts_to_verified_servers(engine, started, tmp_path):
    ca = Authority.create("L4 Test CA")
    cert_pem, key_pem = ca.issue("backend.test", ["backend.test"], ["127.0.0.1"])
    (tmp_path / "cert.pem").write_text(cert_pem)
    (tmp_path / "key.pem").write_text(key_pem)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    names: list[str | None] = []
    tls.sni_callback = lambda _sock, name, _ctx: names.append(name)
    echo = started(GreetingEcho("secure", tls))
    front_cert, front_key = ca.issue("front.test", ["front.test"])
    by_address, by_name, wrong, offload = free_port(), free_port(), free_port(), free_port()
    engine.apply(
        {
            "certificates": [
                {"name": "ca", "cert_pem": ca.cert_pem, "key_pem": ca.key_pem},
                {"name": "front", "cert_pem": front_cert, "key_pem": front_key},
            ],
            "virtual_services": [
                *tcp_service(
                    "reencrypt-wrong",
                    wrong,
                    [echo.port],
                    health={"type": "none"},
                    reencrypt={"verify": True, "ca_certificate": "ca", "sni": "wrong.test"},
                )["virtual_services"],
                *tcp_service(
                    "reencrypt-offload",
                    offload,
                    [echo.port],
                    health={"type": "none"},
                    tls={"certificates": ["front"]},
                    reencrypt={"verify": True, "ca_certificate": "ca"},
                )["virtual_services"],
                *tcp_service(
                    "reencrypt-ip",
                    by_address,
                    [echo.port],
                    health={"type": "none"},
                    reencrypt={"verify": True, "ca_certificate": "ca"},
                )["virtual_services"],
                *tcp_service(
                    "reencrypt-name",
                    by_name,
                    [echo.port],
                    health={"type": "none"},
                    reencrypt={"verify": True, "ca_certificate": "ca", "sni": "backend.test"},
                )["virtual_services"],
            ],
        }
    )
    # No name to send: the server's address is verified against the certificate's IP SANs.
    sock, name = greeted(by_address)
    sock.sendall(b"over tls")
    assert (name, sock.recv(64)) == ("secure", b"over tls")
    sock.close()
    assert names[-1] is None
    # A fixed name is sent as SNI and verified.
    sock, name = greeted(by_name)
    assert name == "secure"
    sock.close()
    assert names[-1] == "backend.test"
    # A certificate that does not match: the handshake fails like a refused connect.
    assert refused(wrong)
    assert engine.server_stats("reencrypt-wrong", f"127.0.0.1:{echo.port}")["failures"] >= 1
    # TLS on both sides: the name the client asked for is the one sent on to the server.
    client_tls = ssl.create_default_context(cadata=ca.cert_pem)
    client_tls.check_hostname = False
    assert _greeting_and_echo_over_tls(offload, client_tls, "backend.test", b"both legs") == (
        b"secure\n",
        b"both legs",
    )
    assert names[-1] == "backend.test"


def test_active_counts_come_back_however_relays_end(engine, started):
    echo = started(GreetingEcho("e"))
    port = free_port()
    engine.apply(tcp_service("ends", port, [echo.port]))
    open_ones = [greeted(port)[0] for _ in range(6)]
    row = next(s for s in engine.stats() if s["name"] == "ends")
    assert row["active"] == 6  # the accepting greenlets are gone; the relays are counted
    for i, sock in enumerate(open_ones):
        sock.sendall(b"ping")
        assert sock.recv(64) == b"ping"
        if i % 2:  # a client that resets
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        else:
            finish(sock)
    deadline = time.monotonic() + 3
    while (row := next(s for s in engine.stats() if s["name"] == "ends"))["active"]:
        assert time.monotonic() < deadline, row
        time.sleep(0.02)
    assert row["total"] == 6
    assert (row["bytes_in"], row["bytes_out"]) == (6 * 4, 6 * (2 + 4))
    assert engine.server_stats("ends", f"127.0.0.1:{echo.port}")["active"] == 0


def test_tls_offload_counts_a_handshake_in_progress_and_cuts_a_stalled_one_off(engine, started):
    ca = Authority.create("L4 Offload CA")
    front_cert, front_key = ca.issue("front.test", ["front.test"])
    echo = started(GreetingEcho("plain"))
    port = free_port()
    config = tcp_service(
        "offload-stall",
        port,
        [echo.port],
        health={"type": "none"},
        tls={"certificates": ["front"]},
        header_timeout=1,
    )
    config["certificates"] = [{"name": "front", "cert_pem": front_cert, "key_pem": front_key}]
    engine.apply(config)
    stalled = socket.create_connection(("127.0.0.1", port))
    try:
        # The silent client is counted while its handshake waits...
        deadline = time.monotonic() + 5
        while next(s for s in engine.stats() if s["name"] == "offload-stall")["active"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # ...and holds up no one: a real client's handshake and relay go through meanwhile.
        client_tls = ssl.create_default_context(cadata=ca.cert_pem)
        assert _greeting_and_echo_over_tls(port, client_tls, "front.test", b"through") == (
            b"plain\n",
            b"through",
        )
        # The header timeout (1 s) bounds the handshake: the engine closes the silent one.
        stalled.settimeout(5)
        assert stalled.recv(64) == b""
    finally:
        stalled.close()
    deadline = time.monotonic() + 5
    while next(s for s in engine.stats() if s["name"] == "offload-stall")["active"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
