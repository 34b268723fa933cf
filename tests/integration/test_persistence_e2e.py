"""Persistence through the real engine (2 workers): every request on a new client connection.

The pools below use round robin, which on its own spreads consecutive new connections over the
servers, so a client that keeps one server does so because of persistence; the decisions live
in the supervisor, which is what makes them hold across workers and reloads.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from collections import Counter

from passerelle.engine.balance.persistence import cookie_token

from support.engine import TCP_HEALTH, free_port, shared_engine

engine = shared_engine()


def http_service(name: str, port: int, backends, persistence: dict, **extra) -> dict:
    return {
        "name": name,
        "address": "127.0.0.1",
        "ports": [port],
        "mode": "http",
        "persistence": persistence,
        "health_check": TCP_HEALTH,
        "real_servers": [{"address": b.address, "port": b.port} for b in backends],
        **extra,
    }


class Answer:
    def __init__(self, response: http.client.HTTPResponse, body: bytes) -> None:
        assert response.status == 200, body
        self.seen = json.loads(body)
        self.server: str = self.seen["server"]
        self.set_cookies: list[str] = response.headers.get_all("Set-Cookie") or []


def fetch(
    port: int, path: str = "/", source: str = "127.0.0.1", headers: dict | None = None
) -> Answer:
    """One GET on a new client connection (so either worker may take it)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return Answer(response, response.read())
    finally:
        conn.close()


def test_source_ip_prefix_groups_a_subnet_and_prefix_32_keeps_clients_apart(engine, servers):
    backends = [servers.http(f"s{i}") for i in range(3)]
    subnet, single = free_port(), free_port()
    engine.apply(
        {
            "virtual_services": [
                http_service("subnet", subnet, backends, {"mode": "source_ip", "ipv4_prefix": 24}),
                http_service("single", single, backends, {"mode": "source_ip"}),
            ]
        }
    )
    # Two clients of one /24, alternating over new connections: one server for both.
    answers = {fetch(subnet, source=f"127.0.61.{1 + i % 2}").server for i in range(20)}
    assert len(answers) == 1, answers

    # /32: each client sticks to its own server, and round robin spreads first visits.
    sources = [f"127.0.62.{i}" for i in range(1, 7)]
    first = {source: fetch(single, source=source).server for source in sources}
    for _ in range(3):
        for source in sources:
            assert fetch(single, source=source).server == first[source], source
    assert len(set(first.values())) >= 2, first


def test_a_busy_keep_alive_client_keeps_its_server_while_its_answer_is_renewed(engine, servers):
    # A worker reuses the supervisor's answer for 1 s and asks again in the background halfway
    # through; requests keep coming on kept-alive connections for several such periods, and
    # past the 2 s persistence timeout, which only those renewals keep sliding.
    backends = [servers.http(f"r{i}") for i in range(3)]
    port = free_port()
    engine.apply(
        {
            "virtual_services": [
                http_service("busy", port, backends, {"mode": "source_ip", "timeout": 2})
            ]
        }
    )
    log_before = engine.log.stat().st_size
    conns = [
        http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=("127.0.63.1", 0))
        for _ in range(4)
    ]
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + 4.5
    while time.monotonic() < deadline:
        for conn in conns:
            conn.request("GET", "/")
            response = conn.getresponse()
            seen[Answer(response, response.read()).server] += 1
    for conn in conns:
        conn.close()
    assert len(seen) == 1, seen
    assert sum(seen.values()) > 200, seen
    with engine.log.open("rb") as log:
        log.seek(log_before)
        written = log.read()
    assert b"Traceback" not in written and b"ERROR" not in written, written[-2000:]


def test_source_ip_holds_across_reload_and_moves_once_when_the_server_goes_down(engine, servers):
    backends = {name: servers.http(name) for name in ("a", "b", "c")}
    port = free_port()
    persistence = {"mode": "source_ip"}
    source = "127.0.61.10"
    engine.apply(
        {"virtual_services": [http_service("reload", port, backends.values(), persistence)]}
    )
    held = fetch(port, source=source).server
    assert {fetch(port, source=source).server for _ in range(8)} == {held}

    engine.apply(
        {
            "virtual_services": [
                http_service(
                    "reload",
                    port,
                    backends.values(),
                    persistence,
                    headers={"request_add": {"X-Reloaded": "yes"}},
                )
            ]
        }
    )
    after = [fetch(port, source=source) for _ in range(8)]
    assert all(a.seen["headers"].get("x-reloaded") == "yes" for a in after)  # new config live
    assert {a.server for a in after} == {held}

    down = backends[held]
    down.stop()
    engine.wait_health("reload", f"127.0.0.1:{down.port}", "down")
    moved = fetch(port, source=source).server
    assert moved != held
    assert {fetch(port, source=source).server for _ in range(8)} == {moved}
    # The old server coming back does not take the client back: the entry now names the new one.
    down.start()
    engine.wait_health("reload", f"127.0.0.1:{down.port}", "up")
    assert {fetch(port, source=source).server for _ in range(8)} == {moved}


STANDARD_COOKIE = re.compile(r"^PASSERELLE=([0-9a-f]{16}); Path=/; HttpOnly$")


def test_active_cookie_pins_the_client_and_is_not_set_again(engine, servers):
    backends = {name: servers.http(name) for name in ("a", "b", "c")}
    port = free_port()
    engine.apply(
        {
            "virtual_services": [
                http_service("cookie", port, backends.values(), {"mode": "active_cookie"})
            ]
        }
    )
    first = fetch(port)
    assert len(first.set_cookies) == 1, first.set_cookies
    match = STANDARD_COOKIE.match(first.set_cookies[0])
    assert match, first.set_cookies[0]
    token = match.group(1)
    assert token == cookie_token(f"127.0.0.1:{backends[first.server].port}")

    cookie = {"Cookie": f"other=1; PASSERELLE={token}"}
    answers = [fetch(port, headers=cookie) for _ in range(20)]
    assert {a.server for a in answers} == {first.server}
    assert all(a.set_cookies == [] for a in answers)

    # Without the cookie, round robin applies and each answer names its server anew.
    fresh = [fetch(port) for _ in range(6)]
    assert len({a.server for a in fresh}) >= 2
    for a in fresh:
        assert a.set_cookies == [
            f"PASSERELLE={cookie_token(f'127.0.0.1:{backends[a.server].port}')}; Path=/; HttpOnly"
        ]
    # A token that names no server is replaced.
    stale = fetch(port, headers={"Cookie": "PASSERELLE=0000000000000000"})
    assert len(stale.set_cookies) == 1 and STANDARD_COOKIE.match(stale.set_cookies[0])


def test_ms_wsman_cookie_is_set_on_every_response_to_a_request_without_it(engine, servers):
    backends = {name: servers.http(name) for name in ("a", "b", "c")}
    port = free_port()
    persistence = {"mode": "active_cookie", "cookie_name": "MS-WSMAN", "cookie_style": "ms-wsman"}
    vs = http_service("wsman", port, backends.values(), persistence)
    engine.apply({"virtual_services": [vs]})

    # Keep-alive: every response to a request without the cookie carries it again.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(4):
        conn.request("GET", "/")
        response = conn.getresponse()
        answer = Answer(response, response.read())
        token = cookie_token(f"127.0.0.1:{backends[answer.server].port}")
        assert answer.set_cookies == [f"MS-WSMAN={token}; Path=/"]
        lowered = answer.set_cookies[0].lower()
        assert "httponly" not in lowered and "expires" not in lowered and "max-age" not in lowered
    conn.close()

    first = fetch(port)
    token = first.set_cookies[0].split(";")[0].split("=", 1)[1]
    with_cookie = [fetch(port, headers={"Cookie": f"MS-WSMAN={token}"}) for _ in range(12)]
    assert {a.server for a in with_cookie} == {first.server}
    assert all(a.set_cookies == [] for a in with_cookie)


def test_server_cookie_is_learned_and_followed_by_every_worker(engine, servers):
    backends = {name: servers.http(name) for name in ("a", "b", "c")}
    port = free_port()
    engine.apply(
        {
            "virtual_services": [
                http_service(
                    "learned",
                    port,
                    backends.values(),
                    {"mode": "server_cookie", "cookie_name": "JSESSIONID"},
                )
            ]
        }
    )
    login = fetch(port, "/set-cookie/JSESSIONID=abc123")
    assert login.set_cookies == ["JSESSIONID=abc123; Path=/"]  # the server's own, untouched
    cookie = {"Cookie": "JSESSIONID=abc123"}
    answers = Counter(fetch(port, headers=cookie).server for _ in range(20))
    assert answers == {login.server: 20}
    # Without the cookie there is nothing to follow: round robin spreads the requests.
    assert len({fetch(port).server for _ in range(6)}) >= 2


def test_header_persistence_keys_on_the_header_value(engine, servers):
    backends = [servers.http(name) for name in ("a", "b", "c")]
    port = free_port()
    persistence = {"mode": "header", "header_name": "X-Client-Id"}
    engine.apply({"virtual_services": [http_service("header", port, backends, persistence)]})
    clients = [f"client-{i}" for i in range(6)]
    first = {c: fetch(port, headers={"X-Client-Id": c}).server for c in clients}
    for _ in range(3):
        for c in clients:
            assert fetch(port, headers={"X-Client-Id": c}).server == first[c], c
    assert len(set(first.values())) >= 2, first


def test_a_server_cookie_learned_again_is_followed_at_once(engine, servers):
    backends = [servers.http(name) for name in ("a", "b", "c")]
    port = free_port()
    persistence = {"mode": "server_cookie", "cookie_name": "JSESSIONID"}
    engine.apply({"virtual_services": [http_service("relearn", port, backends, persistence)]})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

    def get(path: str, cookie: str | None = None) -> str:
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        response = conn.getresponse()
        return Answer(response, response.read()).server

    # An unknown session id gets a server of its own ...
    first = get("/", "JSESSIONID=s1")
    assert get("/", "JSESSIONID=s1") == first
    # ... until a server hands that id out itself: from then on that server is the one,
    # on this very connection (the worker that learned it) and on new ones (either worker).
    learner = first
    while learner == first:
        learner = get("/set-cookie/JSESSIONID=s1")
    assert get("/", "JSESSIONID=s1") == learner
    conn.close()
    cookie = {"Cookie": "JSESSIONID=s1"}
    assert {fetch(port, headers=cookie).server for _ in range(10)} == {learner}
