"""Scheduling methods: distributions, fairness across candidate-set changes, determinism."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from passerelle.engine.balance.scheduling import make_scheduler
from passerelle.engine.model.config import SCHEDULING_METHODS


@dataclass
class Server:
    key: str
    weight: int = 1000
    active: int = 0


def servers(*weights: int) -> list[Server]:
    return [Server(f"10.0.0.{i + 1}:443", w) for i, w in enumerate(weights)]


def picks(method: str, candidates: Sequence[Server], count: int, ip: str = "") -> list[str]:
    scheduler = make_scheduler(method)
    out = []
    for _ in range(count):
        chosen = scheduler.pick(candidates, ip)
        assert chosen is not None
        out.append(chosen.key)
    return out


def names(keys: list[str], pool: Sequence[Server]) -> str:
    letter = {s.key: "abcdefghij"[i] for i, s in enumerate(pool)}
    return "".join(letter[k] for k in keys)


@pytest.mark.parametrize("method", SCHEDULING_METHODS)
def test_every_model_method_exists_and_empty_gives_none(method: str) -> None:
    scheduler = make_scheduler(method)
    assert scheduler.pick([], "10.1.1.1") is None
    only = Server("10.0.0.9:80")
    assert scheduler.pick([only], "10.1.1.1") is only


def test_unknown_method_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown scheduling method"):
        make_scheduler("random")


# --- round robin -------------------------------------------------------------------------------


def test_round_robin_rotates_in_order_ignoring_weight() -> None:
    pool = servers(5, 1, 0)
    assert names(picks("round_robin", pool, 7), pool) == "abcabca"


def test_round_robin_continues_after_the_last_pick_when_the_set_changes() -> None:
    a, b, c, d = servers(1, 1, 1, 1)
    rr = make_scheduler("round_robin")
    assert rr.pick([a, b, c, d], "") is a
    assert rr.pick([a, b, c, d], "") is b
    # b goes down just after being picked: the next is the one that followed it, c
    assert rr.pick([a, c, d], "") is c
    assert rr.pick([a, c, d], "") is d
    # b comes back: rotation goes on from d, not from the start
    assert rr.pick([a, b, c, d], "") is a
    assert rr.pick([a, b, c, d], "") is b
    # b and c both go away right after b was picked: d follows
    assert rr.pick([a, d], "") is d


def test_round_robin_stays_fair_while_a_server_flaps() -> None:
    pool = servers(1, 1, 1, 1)
    rr = make_scheduler("round_robin")
    counts: collections.Counter[str] = collections.Counter()
    for i in range(4000):
        # the third server is down every other pick; a fresh list every time
        candidates = list(pool) if i % 2 else [s for s in pool if s is not pool[2]]
        chosen = rr.pick(candidates, "")
        assert chosen is not None
        counts[chosen.key] += 1
    # a restart-at-first-server rotation would give the first server about half of everything
    for server in pool:
        assert 700 <= counts[server.key] <= 1300, counts


# --- weighted round robin ----------------------------------------------------------------------


def test_weighted_round_robin_exact_proportions() -> None:
    pool = servers(3, 2, 1)
    counts = collections.Counter(picks("weighted_round_robin", pool, 600))
    assert [counts[s.key] for s in pool] == [300, 200, 100]


def test_weighted_round_robin_is_smooth_like_nginx() -> None:
    pool = servers(5, 1, 1)
    sequence = names(picks("weighted_round_robin", pool, 21), pool)
    assert sequence == "aabacaa" * 3  # nginx's documented order for 5:1:1
    assert "aaaaa" not in sequence


def test_weighted_round_robin_never_picks_weight_zero() -> None:
    pool = servers(2, 0, 1)
    counts = collections.Counter(picks("weighted_round_robin", pool, 300))
    assert counts[pool[1].key] == 0
    assert [counts[pool[0].key], counts[pool[2].key]] == [200, 100]
    assert make_scheduler("weighted_round_robin").pick(servers(0, 0), "") is None


def test_weighted_round_robin_state_follows_keys_not_positions() -> None:
    a, b, c = servers(3, 2, 1)
    wrr = make_scheduler("weighted_round_robin")
    counts: collections.Counter[str] = collections.Counter()
    for i in range(600):
        # same servers, new objects and a different order each time
        order = [a, b, c] if i % 2 else [c, a, b]
        chosen = wrr.pick([Server(s.key, s.weight) for s in order], "")
        assert chosen is not None
        counts[chosen.key] += 1
    assert [counts[a.key], counts[b.key], counts[c.key]] == [300, 200, 100]


def test_weighted_round_robin_after_a_server_leaves_keeps_the_others_proportions() -> None:
    a, b, c = servers(3, 2, 1)
    wrr = make_scheduler("weighted_round_robin")
    for _ in range(7):  # mid-cycle
        wrr.pick([a, b, c], "")
    counts: collections.Counter[str] = collections.Counter()
    for _ in range(500):
        chosen = wrr.pick([a, b], "")
        assert chosen is not None
        counts[chosen.key] += 1
    assert abs(counts[a.key] - 300) <= 3 and abs(counts[b.key] - 200) <= 3


# --- least connection --------------------------------------------------------------------------


def test_least_connection_picks_fewest_active() -> None:
    a, b, c = servers(1, 1, 1)
    a.active, b.active, c.active = 5, 2, 3
    assert make_scheduler("least_connection").pick([a, b, c], "") is b


def test_least_connection_ties_rotate() -> None:
    pool = servers(9, 1, 1)
    assert names(picks("least_connection", pool, 6), pool) == "abcabc"
    pool[0].active = 4
    lc = make_scheduler("least_connection")
    got = [lc.pick(pool, "") for _ in range(4)]
    assert [s.key for s in got if s] == [pool[1].key, pool[2].key] * 2


def test_least_connection_balances_open_connections() -> None:
    pool = servers(1, 1, 1)
    lc = make_scheduler("least_connection")
    for _ in range(300):
        chosen = lc.pick(pool, "")
        assert chosen is not None
        chosen.active += 1
    assert [s.active for s in pool] == [100, 100, 100]


# --- weighted least connection -----------------------------------------------------------------


def test_weighted_least_connection_minimises_active_per_weight() -> None:
    a, b = servers(3, 1)
    wlc = make_scheduler("weighted_least_connection")
    a.active, b.active = 2, 1  # 2/3 < 1/1
    assert wlc.pick([a, b], "") is a
    a.active, b.active = 4, 1  # 4/3 > 1/1
    assert wlc.pick([a, b], "") is b


def test_weighted_least_connection_ties_rotate() -> None:
    a, b = servers(3, 1)
    a.active, b.active = 3, 1  # 3/3 == 1/1
    wlc = make_scheduler("weighted_least_connection")
    assert [wlc.pick([a, b], "") for _ in range(4)] == [a, b, a, b]


def test_weighted_least_connection_fills_servers_in_weight_proportion() -> None:
    pool = servers(3, 1, 0)
    wlc = make_scheduler("weighted_least_connection")
    for _ in range(400):
        chosen = wlc.pick(pool, "")
        assert chosen is not None
        chosen.active += 1
    assert [s.active for s in pool] == [300, 100, 0]
    assert wlc.pick(servers(0, 0), "") is None


# --- fixed weighting ---------------------------------------------------------------------------


def test_fixed_weighting_highest_takes_all_then_next_highest() -> None:
    a, b, c, d = servers(100, 300, 200, 300)
    fw = make_scheduler("fixed_weighting")
    assert {fw.pick([a, b, c, d], "").key for _ in range(10)} == {b.key}  # type: ignore[union-attr]
    assert fw.pick([a, c, d], "") is d  # b down: the other 300
    assert fw.pick([a, c], "") is c
    assert fw.pick([a], "") is a
    assert fw.pick(servers(0, 0), "") is None


# --- source IP hash ----------------------------------------------------------------------------


IPS = [f"10.{i // 250}.{i % 250}.{(i * 7) % 256}" for i in range(1000)]


def mapping(pool: Sequence[Server], ips: list[str] = IPS) -> dict[str, str]:
    sh = make_scheduler("source_ip_hash")
    out = {}
    for ip in ips:
        chosen = sh.pick(pool, ip)
        assert chosen is not None
        out[ip] = chosen.key
    return out


def test_source_ip_hash_is_sticky_and_independent_of_order_and_instance() -> None:
    pool = servers(1, 1, 1, 1)
    first = mapping(pool)
    assert mapping(list(reversed(pool))) == first
    assert mapping([Server(s.key, s.weight) for s in pool]) == first
    counts = collections.Counter(first.values())
    assert all(180 <= counts[s.key] <= 320 for s in pool), counts


def test_source_ip_hash_respects_weights() -> None:
    pool = servers(3, 1, 0)
    counts = collections.Counter(mapping(pool).values())
    assert counts[pool[2].key] == 0
    assert 680 <= counts[pool[0].key] <= 820, counts


def test_source_ip_hash_moves_only_the_clients_of_a_removed_server() -> None:
    pool = servers(1, 1, 1, 1)
    before = mapping(pool)
    gone = pool[1]
    after = mapping([s for s in pool if s is not gone])
    moved = {ip for ip in IPS if before[ip] != after[ip]}
    assert moved == {ip for ip in IPS if before[ip] == gone.key}
    assert len({after[ip] for ip in moved}) == 3  # spread over all the others, not one
    # and when it comes back it takes back exactly its own clients
    assert mapping(pool) == before


def test_source_ip_hash_treats_ipv4_mapped_as_ipv4() -> None:
    pool = servers(1, 1, 1, 1, 1)
    sh = make_scheduler("source_ip_hash")
    for ip in IPS[:50]:
        assert sh.pick(pool, f"::ffff:{ip}") is sh.pick(pool, ip)


_CHILD = """
import json, sys
from passerelle.engine.balance.scheduling import make_scheduler
class S:
    def __init__(self, key, weight):
        self.key, self.weight, self.active = key, weight, 0
pool = [S(f"192.0.2.{i}:443", 1000 + i) for i in range(1, 6)] + [S("[2001:db8::1]:443", 500)]
sh = make_scheduler("source_ip_hash")
ips = [f"198.51.100.{i}" for i in range(256)] + [f"2001:db8:1::{i:x}" for i in range(256)]
print(json.dumps([sh.pick(pool, ip).key for ip in ips]))
"""


def test_source_ip_hash_agrees_across_processes_with_different_hash_seeds() -> None:
    results = []
    for seed in ("1", "2", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run(
            [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stderr
        results.append(json.loads(out.stdout))
    assert results[0] == results[1] == results[2]
    assert len(set(results[0])) == 6  # not trivially constant
