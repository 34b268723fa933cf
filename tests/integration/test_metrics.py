"""Statistics through the real engine (2 workers): /metrics and /stats add up both workers."""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from collections import Counter

from gevent.server import DatagramServer, StreamServer

from support.engine import TCP_HEALTH, free_port, shared_engine

SAMPLE = re.compile(r"^([a-z_]+)\{(.*)\} (-?\d+)$")
LABEL = re.compile(r'([a-z_]+)="((?:[^"\\]|\\.)*)"')


engine = shared_engine()


def parse_metrics(text: str) -> dict[str, dict[frozenset, int]]:
    """Prometheus text format: family -> {label set: value}; checks HELP/TYPE come first."""
    families: dict[str, dict[frozenset, int]] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert name not in typed, f"{name} declared twice"
            assert kind in ("counter", "gauge")
            assert name.endswith("_total") == (kind == "counter"), line
            typed.add(name)
            continue
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        if match is None:
            name, _, value = line.partition(" ")
            assert name in typed, line
            families.setdefault(name, {})[frozenset()] = int(value)
            continue
        name, labels, value = match.groups()
        assert name in typed, f"sample before its TYPE line: {line}"
        families.setdefault(name, {})[frozenset(LABEL.findall(labels))] = int(value)
    return families


def labels(**values: str) -> frozenset:
    return frozenset(values.items())


def get(port: int, path: str = "/") -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 200, body
    return json.loads(body)["server"]


def wait_until(condition, what: str, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_request_counts_health_and_active_gauges_add_up_over_workers(engine, servers):
    backends = [servers.http(f"s{i}") for i in range(3)]
    dead = free_port()
    port = free_port()
    keys = [f"127.0.0.1:{b.port}" for b in backends]
    engine.apply(
        {
            "virtual_services": [
                {
                    "name": "web",
                    "address": "127.0.0.1",
                    "ports": [port],
                    "mode": "http",
                    "health_check": TCP_HEALTH,
                    "real_servers": [
                        {"address": "127.0.0.1", "port": p}
                        for p in [*(b.port for b in backends), dead]
                    ],
                }
            ]
        }
    )
    engine.wait_health("web", f"127.0.0.1:{dead}", "down")
    requests = 30
    for _ in range(requests):
        get(port)  # a new connection each time: both workers serve some

    # Keep-alive clients hold connections: the gauge counts them, whatever worker has them.
    held = [http.client.HTTPConnection("127.0.0.1", port, timeout=5) for _ in range(3)]
    for conn in held:
        conn.request("GET", "/")
        conn.getresponse().read()
    metrics = parse_metrics(engine.get("/metrics"))
    web = labels(vs="web")
    assert metrics["passerelle_vs_active_connections"][web] == 3
    assert metrics["passerelle_vs_requests_total"][web] == requests + 3
    for conn in held:
        conn.close()

    wait_until(
        lambda: parse_metrics(engine.get("/metrics"))["passerelle_vs_active_connections"][web] == 0,
        "the active gauge to return to 0",
    )
    metrics = parse_metrics(engine.get("/metrics"))
    per_server = {
        key: metrics["passerelle_real_server_requests_total"][
            labels(vs="web", subvs="", server=key)
        ]
        for key in [*keys, f"127.0.0.1:{dead}"]
    }
    assert sum(per_server.values()) == requests + 3
    assert per_server[f"127.0.0.1:{dead}"] == 0
    served = Counter(r["server"] for b in backends for r in b.seen)
    assert {key: per_server[key] for key in keys} == {
        key: served[b.name] for key, b in zip(keys, backends, strict=True)
    }
    up = metrics["passerelle_real_server_up"]
    assert [up[labels(vs="web", subvs="", server=key)] for key in keys] == [1, 1, 1]
    assert up[labels(vs="web", subvs="", server=f"127.0.0.1:{dead}")] == 0
    assert metrics["passerelle_vs_connections_total"][web] == requests + 3  # one connection each
    assert all(
        metrics["passerelle_real_server_active_connections"][labels(vs="web", subvs="", server=key)]
        == 0
        for key in keys
    )

    # /stats tells the same story.
    (service,) = engine.stats()
    assert service["requests"] == requests + 3 and service["active"] == 0
    rows = {row["server"]: row for row in service["real_servers"]}
    assert {key: rows[key]["requests"] for key in per_server} == per_server
    assert rows[f"127.0.0.1:{dead}"]["health"] == "down"
    assert all(rows[key]["health"] == "up" for key in keys)


def test_subvs_and_l4_statistics(engine, servers):
    a, b = servers.http("a"), servers.http("b")
    web, tcp = free_port(), free_port()
    engine.apply(
        {
            "virtual_services": [
                {
                    "name": "switch",
                    "address": "127.0.0.1",
                    "ports": [web],
                    "mode": "http",
                    "subvs": [
                        {
                            "name": "left",
                            "rules": [{"path_prefix": "/left"}],
                            "health_check": TCP_HEALTH,
                            "real_servers": [{"address": "127.0.0.1", "port": a.port}],
                        },
                        {
                            "name": "right",
                            "rules": [{"path_prefix": "/right"}],
                            "health_check": TCP_HEALTH,
                            "real_servers": [{"address": "127.0.0.1", "port": b.port}],
                        },
                    ],
                },
                {
                    "name": "tcp",
                    "address": "127.0.0.1",
                    "ports": [tcp],
                    "mode": "l4",
                    "health_check": TCP_HEALTH,
                    "real_servers": [{"address": "127.0.0.1", "port": a.port}],
                },
            ]
        }
    )
    for _ in range(4):
        assert get(web, "/left/x") == "a"
    for _ in range(6):
        assert get(web, "/right") == "b"
    # L4 through to a web server: connections, not requests, and bytes both ways.
    held = [socket.create_connection(("127.0.0.1", tcp), timeout=5) for _ in range(2)]
    for sock in held:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    metrics = parse_metrics(engine.get("/metrics"))
    assert metrics["passerelle_vs_requests_total"][labels(vs="switch")] == 10
    subvs = metrics["passerelle_subvs_requests_total"]
    assert subvs[labels(vs="switch", subvs="left")] == 4
    assert subvs[labels(vs="switch", subvs="right")] == 6
    server = metrics["passerelle_real_server_requests_total"]
    assert server[labels(vs="switch", subvs="left", server=f"127.0.0.1:{a.port}")] == 4
    assert server[labels(vs="switch", subvs="right", server=f"127.0.0.1:{b.port}")] == 6
    tcp_server = labels(vs="tcp", subvs="", server=f"127.0.0.1:{a.port}")
    assert metrics["passerelle_real_server_active_connections"][tcp_server] == 2
    assert metrics["passerelle_vs_active_connections"][labels(vs="tcp")] == 2
    assert metrics["passerelle_vs_connections_total"][labels(vs="tcp")] == 2
    assert metrics["passerelle_vs_bytes_in_total"][labels(vs="tcp")] == 2 * 27
    assert metrics["passerelle_vs_bytes_out_total"][labels(vs="tcp")] > 0
    for sock in held:
        sock.close()
    wait_until(
        lambda: (
            parse_metrics(engine.get("/metrics"))["passerelle_real_server_active_connections"][
                tcp_server
            ]
            == 0
        ),
        "the L4 server gauge to return to 0",
    )
    (switch, _) = engine.stats()
    assert [s["requests"] for s in switch["subvs"]] == [4, 6]


def test_udp_sessions_and_bytes_are_counted_per_real_server(engine):
    echo = DatagramServer(("127.0.0.1", 0), lambda data, peer: echo.sendto(data, peer))
    echo.start()
    port = free_port("127.0.0.1", socket.SOCK_DGRAM)
    try:
        engine.apply(
            {
                "virtual_services": [
                    {
                        "name": "dns",
                        "address": "127.0.0.1",
                        "ports": [port],
                        "protocol": "udp",
                        "mode": "l4",
                        "health_check": {"type": "none"},
                        "real_servers": [{"address": "127.0.0.1", "port": echo.server_port}],
                    }
                ]
            }
        )
        for i in (1, 2):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.bind((f"127.0.65.{i}", 0))
                client.settimeout(3)
                client.sendto(b"query", ("127.0.0.1", port))
                assert client.recvfrom(64)[0] == b"query"
        (service,) = engine.stats()
        assert service["total"] == 2
        (server,) = service["real_servers"]
        assert server["total"] == 2
        assert (service["bytes_in"], service["bytes_out"]) == (10, 10)
        assert (server["bytes_in"], server["bytes_out"]) == (10, 10)
    finally:
        echo.stop()


class OneRequestPerConnection:
    """Answers the first request of a connection keep-alive, then closes when the next one
    arrives: a server whose idle timeout fires just as the proxy reuses the connection."""

    def __init__(self) -> None:
        self.server = StreamServer(("127.0.0.1", 0), self._handle)
        self.requests = 0

    def _handle(self, sock: socket.socket, peer: tuple) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return
            data += chunk
        self.requests += 1
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        sock.recv(4096)  # the next request: dropped unanswered
        sock.close()


def test_a_retried_stale_server_connection_counts_the_request_once(engine):
    backend = OneRequestPerConnection()
    backend.server.start()
    port, backend_port = free_port(), backend.server.server_port
    key = f"127.0.0.1:{backend_port}"
    try:
        engine.apply(
            {
                "virtual_services": [
                    {
                        "name": "stale",
                        "address": "127.0.0.1",
                        "ports": [port],
                        "mode": "http",
                        "health_check": {"type": "none"},
                        "real_servers": [
                            {"address": "127.0.0.1", "port": backend.server.server_port}
                        ],
                    }
                ]
            }
        )
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for _ in range(2):  # one client connection: one worker, one idle pool
            conn.request("GET", "/")
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b"ok\n")
        conn.close()
        assert backend.requests == 2
        metrics = parse_metrics(engine.get("/metrics"))
        assert metrics["passerelle_vs_requests_total"][labels(vs="stale")] == 2
        server = labels(vs="stale", subvs="", server=key)
        assert metrics["passerelle_real_server_requests_total"][server] == 2
    finally:
        backend.server.stop(timeout=0.5)
