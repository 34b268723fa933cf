"""L7 virtual services end to end: a real engine, real sample servers, real client sockets."""

from __future__ import annotations

import http.client
import json
from collections import Counter

from support.engine import free_port


def service(port: int, servers, **extra) -> dict:
    return {
        "virtual_services": [
            {
                "name": "web",
                "address": "127.0.0.1",
                "ports": [port],
                "mode": "http",
                "health_check": {"type": "tcp", "interval": 0.5, "timeout": 0.4},
                "real_servers": [{"address": s.address, "port": s.port} for s in servers],
                **extra,
            }
        ]
    }


def get(conn: http.client.HTTPConnection, path: str = "/", headers: dict | None = None) -> dict:
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, body
    return json.loads(body)


def test_round_robin_balances_each_request_of_one_keepalive_connection(engine, servers):
    backends = [servers.http(f"fe{i}") for i in range(3)]
    port = free_port()
    engine.start(service(port, backends))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    answers = [get(conn) for _ in range(9)]
    # One client TCP connection, every request balanced on its own (Skype mobile clients).
    assert Counter(a["server"] for a in answers) == {"fe0": 3, "fe1": 3, "fe2": 3}
    assert len({conn.sock.getsockname()}) == 1
    conn.close()


def test_forwarded_headers_and_original_host(engine, servers):
    backend = servers.http("fe0")
    port = free_port()
    engine.start(
        service(
            port,
            [backend],
            headers={"request_add": {"X-Site": "edge"}, "response_add": {"X-Proxy": "passerelle"}},
        )
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request(
        "GET", "/a?b=1", headers={"Host": "webext.contoso.com", "X-Forwarded-For": "10.9.9.9"}
    )
    response = conn.getresponse()
    seen = json.loads(response.read())
    assert seen["host"] == "webext.contoso.com"
    assert seen["path"] == "/a" and seen["query"] == "b=1"
    assert seen["headers"]["x-forwarded-for"] == "10.9.9.9, 127.0.0.1"
    assert seen["headers"]["x-forwarded-proto"] == "http"
    assert seen["headers"]["x-site"] == "edge"
    assert response.getheader("X-Proxy") == "passerelle"


def test_all_servers_down_gives_a_clear_503(engine, servers):
    port = free_port()
    dead = free_port()
    engine.start(
        {
            "virtual_services": [
                {
                    "name": "web",
                    "address": "127.0.0.1",
                    "ports": [port],
                    "health_check": {"type": "tcp", "interval": 0.5, "timeout": 0.4},
                    "real_servers": [{"address": "127.0.0.1", "port": dead}],
                }
            ]
        }
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/")
    response = conn.getresponse()
    assert response.status == 503
    assert b"No real server" in response.read()
