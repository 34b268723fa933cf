"""Scheduling methods through the real engine (2 workers), one new client connection each time.

Every request opens a new client connection, so SO_REUSEPORT spreads them over both workers.
Each worker keeps its own scheduler state (rotation, smooth weights): shares are therefore
exact per worker, not overall, and the bounds below allow for that. Least connection reads the
active counts of both workers from shared memory.
"""

from __future__ import annotations

import http.client
import json
from collections import Counter
from dataclasses import dataclass

from passerelle.engine.balance.scheduling import SourceIPHash

from support.engine import TCP_HEALTH, free_port, shared_engine
from support.l4_peers import GreetingEcho, finish, greeted

engine = shared_engine()


def http_service(name: str, port: int, backends, scheduling: str, weights=None) -> dict:
    weights = weights or [1000] * len(backends)
    return {
        "name": name,
        "address": "127.0.0.1",
        "ports": [port],
        "mode": "http",
        "scheduling": scheduling,
        "health_check": TCP_HEALTH,
        "real_servers": [
            {"address": b.address, "port": b.port, "weight": w}
            for b, w in zip(backends, weights, strict=True)
        ],
    }


def served_by(port: int, source: str = "127.0.0.1") -> str:
    """The sample server that answered a GET sent on a new client connection from ``source``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 200, body
    return json.loads(body)["server"]


def test_round_robin_spreads_new_connections_over_both_workers(engine, servers):
    backends = [servers.http(f"rr{i}") for i in range(3)]
    port = free_port()
    engine.apply({"virtual_services": [http_service("rr", port, backends, "round_robin")]})
    answers = Counter(served_by(port) for _ in range(60))
    # Per-worker rotation: exact thirds within each worker, so 15..25 of 60 overall.
    assert set(answers) == {"rr0", "rr1", "rr2"}
    assert all(15 <= n <= 25 for n in answers.values()), answers
    # Each worker keeps its own idle server connections: more of them than servers shows
    # that both workers took part.
    connections = {(s.name, r["connection"]) for s in backends for r in s.seen}
    assert len(connections) > 3, connections


def test_weighted_round_robin_follows_weights(engine, servers):
    backends = [servers.http(f"w{i}") for i in range(3)]
    port = free_port()
    engine.apply(
        {
            "virtual_services": [
                http_service("wrr", port, backends, "weighted_round_robin", [300, 200, 100])
            ]
        }
    )
    answers = Counter(served_by(port) for _ in range(60))
    # 30/20/10 within each worker's smooth cycle of six; a partial cycle per worker is the slack.
    assert abs(answers["w0"] - 30) <= 4, answers
    assert abs(answers["w1"] - 20) <= 4, answers
    assert abs(answers["w2"] - 10) <= 4, answers


def test_fixed_weighting_uses_the_top_weight_then_the_next_when_it_is_down(engine, servers):
    backends = [servers.http(f"f{i}") for i in range(3)]
    port = free_port()
    engine.apply(
        {
            "virtual_services": [
                http_service("fixed", port, backends, "fixed_weighting", [200, 300, 100])
            ]
        }
    )
    assert Counter(served_by(port) for _ in range(12)) == {"f1": 12}
    backends[1].stop()
    engine.wait_health("fixed", f"127.0.0.1:{backends[1].port}", "down")
    assert Counter(served_by(port) for _ in range(12)) == {"f0": 12}


def test_source_ip_hash_is_the_same_in_every_worker(engine, servers):
    backends = [servers.http(f"h{i}") for i in range(3)]
    port = free_port()
    engine.apply({"virtual_services": [http_service("hash", port, backends, "source_ip_hash")]})

    @dataclass
    class Candidate:
        key: str
        name: str
        weight: int = 1000
        active: int = 0

    candidates = [Candidate(f"127.0.0.1:{b.port}", b.name) for b in backends]
    expected_of = {}
    for i in range(1, 25):
        source = f"127.0.60.{i}"
        pick = SourceIPHash().pick(candidates, source)
        assert pick is not None
        expected_of[source] = pick.name
    # The same client, over many new connections (both workers), always gets one server ...
    assert {served_by(port, "127.0.60.1") for _ in range(16)} == {expected_of["127.0.60.1"]}
    # ... and different clients spread, each to the server the hash designates.
    seen = {source: served_by(port, source) for source in expected_of}
    assert seen == expected_of
    assert len(set(seen.values())) == 3


# -- least connection (L4, so that a connection stays open as long as the test holds it) ------


def spread(port: int, count: int) -> Counter:
    """Servers reached by ``count`` short connections made one after the other."""
    answers: Counter = Counter()
    for _ in range(count):
        sock, name = greeted(port)
        answers[name] += 1
        finish(sock)  # and waits for the relay's close to reach the counters
    return answers


def test_least_connection_avoids_the_busy_server_across_workers(engine):
    echoes = [GreetingEcho(f"lc{i}").start() for i in range(3)]
    port = free_port()

    def config(others: str) -> dict:
        return {
            "virtual_services": [
                {
                    "name": "lc",
                    "address": "127.0.0.1",
                    "ports": [port],
                    "mode": "l4",
                    "scheduling": "least_connection",
                    "health_check": TCP_HEALTH,
                    "real_servers": [
                        {"address": "127.0.0.1", "port": e.port, "state": state}
                        for e, state in zip(echoes, ["enabled", others, others], strict=True)
                    ],
                }
            ]
        }

    try:
        # Pin long connections on lc0 by leaving it alone in the pool, then open the pool.
        # One held connection first: the worker that does not hold it sees lc0 busy only
        # through the shared counters, so this phase fails if a worker counts only its own.
        engine.apply(config("disabled"))
        held = [greeted(port)]
        engine.apply(config("enabled"))
        assert set(spread(port, 15)) == {"lc1", "lc2"}
        engine.apply(config("disabled"))
        held.append(greeted(port))
        assert [name for _, name in held] == ["lc0", "lc0"]
        engine.apply(config("enabled"))
        answers = spread(port, 20)
        assert set(answers) == {"lc1", "lc2"}, answers
        for sock, _ in held:
            sock.sendall(b"still here")
            assert sock.recv(64) == b"still here"
            sock.close()
    finally:
        for echo in echoes:
            echo.stop()
