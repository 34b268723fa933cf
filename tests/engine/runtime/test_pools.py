"""Server choice as a worker makes it: health, limits, persistence remembered briefly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from passerelle.engine.model.config import Pool
from passerelle.engine.runtime import pools
from passerelle.engine.runtime.pools import PoolRuntime, RecentDecisions
from passerelle.engine.stats.counters import ACTIVE, HEALTH_DOWN, HEALTH_UP, WIDTH, CounterTable


class Authority:
    """Records what the worker asks; answers like the supervisor (first assignment wins)."""

    def __init__(self) -> None:
        self.table: dict[str, str] = {}
        self.asked = 0
        self.later: list[Callable[[], None]] = []

    def persist(self, pool: str, key: str, candidate: str, timeout: float) -> str:
        self.asked += 1
        return self.table.setdefault(key, candidate)

    def learn(self, pool: str, key: str, server: str, timeout: float) -> None:
        self.table[key] = server

    def persist_later(
        self, pool: str, key: str, candidate: str, timeout: float, answer: Callable[[str], None]
    ) -> None:
        self.later.append(lambda: answer(self.persist(pool, key, candidate, timeout)))

    def answer_later(self) -> None:
        """What the worker asked in the background is answered now."""
        while self.later:
            self.later.pop(0)()


@pytest.fixture
def table(tmp_path: Path):
    counters = CounterTable(tmp_path / "counters", 2, create=True)
    yield counters
    counters.close()


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """The time the pools module reads, moved by the test."""
    now = [100.0]
    monkeypatch.setattr(pools, "monotonic", lambda: now[0])
    return now


def make_pool(table: CounterTable, authority: Authority, **extra) -> PoolRuntime:
    model = Pool.model_validate(
        {
            "real_servers": [
                {"address": "10.0.0.1", "port": 80},
                {"address": "10.0.0.2", "port": 80},
            ],
            "persistence": {"mode": "source_ip", "timeout": 60},
            **extra,
        }
    )
    slots = iter(range(100))
    pool = PoolRuntime("web", model, lambda key: next(slots), table, authority)
    for server in pool.servers:
        table.set_health(server.slot, HEALTH_UP)
    return pool


def test_a_decision_is_reused_without_asking_again(table, clock) -> None:
    authority = Authority()
    pool = make_pool(table, authority)
    key = pool.source_persist_key("192.0.2.7")
    first = pool.choose("192.0.2.7", key)
    assert [pool.choose("192.0.2.7", key) for _ in range(5)] == [first] * 5
    assert authority.asked == 1
    clock[0] += 2  # beyond the reuse window: the authority is asked (and refreshed) again
    assert pool.choose("192.0.2.7", key) is first
    assert authority.asked == 2


def test_a_remembered_server_that_goes_down_is_not_used(table) -> None:
    authority = Authority()
    pool = make_pool(table, authority)
    key = pool.source_persist_key("192.0.2.7")
    first = pool.choose("192.0.2.7", key)
    table.set_health(first.slot, HEALTH_DOWN)
    other = pool.choose("192.0.2.7", key)
    assert other is not None and other is not first


def test_a_server_that_flapped_does_not_take_back_clients_moved_away(table, clock) -> None:
    # Another worker saw the server down and the authority moved the client; this worker's
    # remembered answer predates the fall and must not be reused once the server is back.
    authority = Authority()
    pool = make_pool(table, authority)
    key = pool.source_persist_key("192.0.2.7")
    first = pool.choose("192.0.2.7", key)
    (other,) = [s for s in pool.servers if s is not first]
    clock[0] += 0.2
    table.down_at[first.slot] = clock[0]  # down, as the supervisor marks it...
    authority.table[key] = other.key  # ...and the authority moved the client meanwhile
    clock[0] += 0.2  # back up within this worker's reuse window
    assert pool.choose("192.0.2.7", key) is other
    assert pool.choose("192.0.2.7", key) is other  # the new answer is reused as usual
    assert authority.asked == 2


def test_a_server_at_its_limit_counts_every_worker(table) -> None:
    authority = Authority()
    pool = make_pool(
        table,
        authority,
        real_servers=[{"address": "10.0.0.1", "port": 80, "max_connections": 1}],
        persistence={"mode": "none"},
    )
    (server,) = pool.servers
    table.row(1)[server.slot * WIDTH + ACTIVE] = 1  # the other worker holds its one connection
    assert pool.choose("192.0.2.7") is None
    table.row(1)[server.slot * WIDTH + ACTIVE] = 0
    assert pool.choose("192.0.2.7") is server


def test_learning_is_followed_at_once_by_this_worker() -> None:
    authority = Authority()
    recent = RecentDecisions(authority, "web", timeout=60)
    recent.learn("web", "cookie:abc", "10.0.0.2:80", 60)
    assert recent.recall("cookie:abc") == "10.0.0.2:80"
    assert authority.table["cookie:abc"] == "10.0.0.2:80"


def test_reuse_never_outlasts_half_the_persistence_timeout(clock) -> None:
    clock[0] = 0.0
    recent = RecentDecisions(Authority(), "web", timeout=0.5)
    recent.persist("web", "k", "10.0.0.1:80", 0.5)
    clock[0] = 0.2
    assert recent.recall("k") == "10.0.0.1:80"
    clock[0] = 0.26
    assert recent.recall("k") is None


def test_an_answer_in_use_is_asked_again_once_before_it_runs_out(clock) -> None:
    clock[0] = 0.0
    authority = Authority()
    recent = RecentDecisions(authority, "web", timeout=60)
    assert recent.persist("web", "ip:192.0.2.7", "10.0.0.1:80", 60) == "10.0.0.1:80"
    assert authority.asked == 1
    clock[0] = 0.4  # within the first half of the reuse time: nobody is asked
    assert recent.recall("ip:192.0.2.7") == "10.0.0.1:80"
    assert authority.later == []
    clock[0] = 0.6  # past it: every request still gets the answer, one asks again
    for _ in range(200):
        assert recent.recall("ip:192.0.2.7") == "10.0.0.1:80"
    assert len(authority.later) == 1
    authority.table["ip:192.0.2.7"] = "10.0.0.2:80"  # meanwhile another worker moved it
    authority.answer_later()
    assert authority.asked == 2
    clock[0] = 1.2  # the first answer would have run out; the renewed one holds
    assert recent.recall_with_time("ip:192.0.2.7") == ("10.0.0.2:80", pytest.approx(0.6))


def test_an_answer_not_renewed_in_time_runs_out(clock) -> None:
    clock[0] = 0.0
    authority = Authority()
    recent = RecentDecisions(authority, "web", timeout=60)
    recent.persist("web", "k", "10.0.0.1:80", 60)
    clock[0] = 0.6
    assert recent.recall("k") == "10.0.0.1:80"  # asked again, the answer is slow
    clock[0] = 1.0
    assert recent.recall("k") is None
    assert len(authority.later) == 1  # and still asked only once


def test_round_robin_follows_health_changes_between_picks(table) -> None:
    # Without connection limits the usable list is kept between picks and renewed when the
    # supervisor's health generation moves: each change must show at the very next pick.
    pool = make_pool(table, Authority(), persistence={"mode": "none"})
    a, b = pool.servers
    assert [pool.schedule("192.0.2.7") for _ in range(4)] == [a, b, a, b]
    table.set_health(b.slot, HEALTH_DOWN)
    assert [pool.schedule("192.0.2.7") for _ in range(3)] == [a, a, a]
    table.set_health(b.slot, HEALTH_UP)
    assert [pool.schedule("192.0.2.7") for _ in range(2)] == [b, a]
    table.set_health(a.slot, HEALTH_DOWN)
    table.set_health(b.slot, HEALTH_DOWN)
    assert pool.schedule("192.0.2.7") is None


def test_connection_pool_keys_tell_apart_every_way_a_server_connection_can_differ() -> None:
    key = pools.connection_pool_key
    variants = [
        key("10.0.0.1", 443, None, False),
        key("10.0.0.1", 443, None, True),
        key("10.0.0.1", 443, "a.contoso.com", True),
        key("10.0.0.1", 443, "b.contoso.com", True),
        key("10.0.0.1", 4431, None, True),
        key("10.0.0.11", 443, None, True),
        key("::1", 443, None, True),
        # a name holding the separator cannot pass for another address or port
        key("10.0.0.1", 443, "x|443", True),
    ]
    assert len(set(variants)) == len(variants)
    assert key("10.0.0.1", 443, "a.contoso.com", True) == key(
        "10.0.0.1", 443, "a.contoso.com", True
    )
