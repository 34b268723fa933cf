"""Persistence keys, cookies and the persistence table (time passed in, never slept)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from passerelle.engine.balance.persistence import (
    PersistenceTable,
    cookie_token,
    find_cookie,
    header_key,
    set_cookie_value,
    set_cookie_values,
    source_key,
)

# --- source_key --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "v4", "v6", "expected"),
    [
        ("10.1.2.3", 32, 128, "10.1.2.3/32"),
        ("10.1.2.3", 24, 128, "10.1.2.0/24"),
        ("10.1.2.200", 24, 128, "10.1.2.0/24"),
        ("10.1.2.3", 0, 128, "0.0.0.0/0"),
        ("172.31.255.255", 12, 128, "172.16.0.0/12"),
        ("::ffff:10.1.2.3", 24, 64, "10.1.2.0/24"),
        ("::FFFF:10.1.2.3", 16, 64, "10.1.0.0/16"),
        ("2001:db8:1:2:3:4:5:6", 32, 64, "2001:db8:1:2::/64"),
        ("2001:DB8::1", 32, 128, "2001:db8::1/128"),
        ("fe80::1%eth0", 32, 10, "fe80::/10"),
    ],
)
def test_source_key_groups_clients_by_network(ip: str, v4: int, v6: int, expected: str) -> None:
    assert source_key(ip, v4, v6) == expected


def test_source_key_same_subnet_same_key() -> None:
    keys = {source_key(f"192.168.7.{i}", 24, 64) for i in range(256)}
    assert keys == {"192.168.7.0/24"}
    assert source_key("192.168.8.1", 24, 64) != "192.168.7.0/24"


@pytest.mark.parametrize("bad", ["", "example.com", "10.1.2", "1.2.3.4.5", "::g"])
def test_source_key_rejects_non_addresses(bad: str) -> None:
    with pytest.raises(ValueError):
        source_key(bad, 24, 64)


def test_source_key_rejects_prefix_out_of_range() -> None:
    with pytest.raises(ValueError):
        source_key("10.0.0.1", 33, 64)


# --- cookies -----------------------------------------------------------------------------------


def test_cookie_token_is_opaque_distinct_and_stable_across_processes() -> None:
    token = cookie_token("10.0.0.5:443")
    assert len(token) == 16 and int(token, 16) >= 0
    assert "10.0.0.5" not in token
    assert token != cookie_token("10.0.0.5:444")
    assert cookie_token("10.0.0.5:443", secret=b"appliance-secret") != token
    child = (
        "from passerelle.engine.balance.persistence import cookie_token\n"
        "print(cookie_token('10.0.0.5:443'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", child],
        env=dict(os.environ, PYTHONHASHSEED="7"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.stdout.strip() == token


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([b"PASSERELLE=abc"], "abc"),
        ([b"a=1; PASSERELLE=abc; b=2"], "abc"),
        ([b"a=1;PASSERELLE=abc;b=2"], "abc"),
        ([b"a=1 ;  PASSERELLE = abc  ; b=2"], "abc"),
        ([b'PASSERELLE="abc"'], "abc"),
        ([b"a=1", b"b=2; PASSERELLE=xyz"], "xyz"),
        ([b"PASSERELLE=first; PASSERELLE=second"], "first"),
        ([b"XPASSERELLE=no; PASSERELLEX=no"], None),
        ([b"a=PASSERELLE"], None),
        ([b"PASSERELLE"], None),
        ([b"passerelle=lowercase-name"], None),
        ([b"PASSERELLE="], ""),
        ([b"a=b=c; PASSERELLE=v=w"], "v=w"),
        ([], None),
    ],
)
def test_find_cookie(headers: list[bytes], expected: str | None) -> None:
    assert find_cookie(headers, "PASSERELLE") == expected


def test_set_cookie_standard_style() -> None:
    assert set_cookie_value("PASSERELLE", "0123abcd", "standard", secure=False) == (
        b"PASSERELLE=0123abcd; Path=/; HttpOnly"
    )
    assert set_cookie_value("PASSERELLE", "0123abcd", "standard", secure=True) == (
        b"PASSERELLE=0123abcd; Path=/; HttpOnly; Secure"
    )


def test_set_cookie_ms_wsman_style_follows_microsoft_rules() -> None:
    plain = set_cookie_value("MS-WSMAN", "0123abcd", "ms-wsman", secure=False)
    secure = set_cookie_value("MS-WSMAN", "0123abcd", "ms-wsman", secure=True)
    assert plain == b"MS-WSMAN=0123abcd; Path=/"
    assert secure == b"MS-WSMAN=0123abcd; Path=/; Secure"
    for value in (plain, secure):
        lowered = value.lower()
        assert b"httponly" not in lowered
        assert b"expires" not in lowered
        assert b"max-age" not in lowered


def test_set_cookie_unknown_style() -> None:
    with pytest.raises(ValueError):
        set_cookie_value("A", "b", "forever", secure=False)


def test_set_cookie_values_learns_from_server_responses() -> None:
    headers = [
        (b"Content-Type", b"text/html"),
        (b"Set-Cookie", b"JSESSIONID=abc123; Path=/; HttpOnly"),
        (b"set-cookie", b"other=1"),
        (b"SET-COOKIE", b' JSESSIONID = "quoted" ; Secure'),
        (b"Set-Cookie2", b"JSESSIONID=old-style"),
        (b"X-Set-Cookie", b"JSESSIONID=nope"),
        (b"Set-Cookie", b"JSESSIONIDX=nope"),
    ]
    assert set_cookie_values(headers, "JSESSIONID") == ["abc123", "quoted"]
    assert set_cookie_values(headers, "missing") == []


def test_header_key() -> None:
    assert header_key(b"  alice@contoso.com ") == "alice@contoso.com"
    assert header_key(b"caf\xe9") == "caf\xe9"
    long_a, long_b = b"Bearer " + b"a" * 500, b"Bearer " + b"b" * 500
    assert header_key(long_a) == header_key(long_a)
    assert header_key(long_a) != header_key(long_b)
    assert len(header_key(long_a)) < 64 and "aaaa" not in header_key(long_a)


# --- PersistenceTable --------------------------------------------------------------------------


def test_assign_then_lookup_with_sliding_timeout() -> None:
    table = PersistenceTable()
    assert table.lookup("web", "10.0.0.0/24", now=0.0) is None
    assert table.assign("web", "10.0.0.0/24", "10.9.0.1:443", timeout=10.0, now=0.0) == (
        "10.9.0.1:443"
    )
    # each use restarts the timeout: alive well past the first 10 s
    for now in (9.0, 18.0, 27.0, 36.0):
        assert table.lookup("web", "10.0.0.0/24", now=now) == "10.9.0.1:443"
    assert table.entries("web", now=40.0) == [("10.0.0.0/24", "10.9.0.1:443", 6.0)]
    assert table.lookup("web", "10.0.0.0/24", now=46.0) is None  # 10 s unused: gone
    assert table.lookup("other", "10.0.0.0/24", now=36.0) is None


def test_entries_do_not_refresh() -> None:
    table = PersistenceTable()
    table.assign("web", "k", "s1", timeout=10.0, now=0.0)
    assert table.entries("web", now=5.0) == [("k", "s1", 5.0)]
    assert table.lookup("web", "k", now=10.0) is None


def test_assign_race_first_one_wins() -> None:
    table = PersistenceTable()
    assert table.assign("web", "client", "s1", timeout=60.0, now=0.0) == "s1"
    assert table.assign("web", "client", "s2", timeout=60.0, now=1.0) == "s1"
    assert table.lookup("web", "client", now=2.0) == "s1"
    # assign also refreshed the entry at t=1 (and the lookup at 2): alive at 61.5
    assert table.lookup("web", "client", now=61.5) == "s1"
    # once expired, a new assignment takes over
    assert table.assign("web", "client", "s2", timeout=60.0, now=200.0) == "s2"
    assert len(table) == 1


def test_learn_overwrites() -> None:
    table = PersistenceTable()
    table.assign("web", "sess", "s1", timeout=60.0, now=0.0)
    table.learn("web", "sess", "s2", timeout=60.0, now=1.0)
    assert table.lookup("web", "sess", now=2.0) == "s2"


def test_expire_drops_only_expired_entries_and_counts_them() -> None:
    table = PersistenceTable()
    for i in range(100):
        table.assign("web", f"k{i}", "s1", timeout=10.0, now=float(i % 10))
    table.assign("mail", "m", "s9", timeout=100.0, now=0.0)
    assert len(table) == 101
    for i in range(0, 50, 10):
        table.lookup("web", f"k{i}", now=8.0)  # k0 .. k40 refreshed: they now expire at 18
    assert table.expire(now=5.0) == 0
    assert table.expire(now=10.0) == 5  # k50 .. k90: assigned at 0, never used since
    assert len(table) == 96
    assert table.expire(now=15.5) == 50  # assigned at 1 .. 5
    assert table.expire(now=19.0) == 45  # assigned at 6 .. 9, and the refreshed ones
    assert len(table) == 1
    assert table.entries("web", now=19.0) == []
    assert table.lookup("mail", "m", now=19.0) == "s9"
    assert table.expire(now=1000.0) == 1
    assert len(table) == 0


def test_shorter_timeout_on_relearn_is_collected_on_time() -> None:
    table = PersistenceTable()
    table.learn("web", "k", "s1", timeout=1000.0, now=0.0)
    table.learn("web", "k", "s1", timeout=5.0, now=0.0)
    assert table.expire(now=6.0) == 1
    assert len(table) == 0


def test_expire_is_cheap_when_nothing_is_due() -> None:
    # the heap front tells at once that nothing expired: no walk over the entries
    table = PersistenceTable()
    for i in range(10000):
        table.assign("web", f"k{i}", "s1", timeout=3600.0, now=0.0)
    heap_before = list(table._heap)
    assert table.expire(now=1.0) == 0
    assert table._heap == heap_before


def test_forget_and_forget_server() -> None:
    table = PersistenceTable()
    for i in range(6):
        table.assign("web", f"k{i}", f"s{i % 2}", timeout=60.0, now=0.0)
    table.assign("mail", "k0", "s0", timeout=60.0, now=0.0)
    assert table.forget_server("web", "s0") == 3
    assert sorted(k for k, _, _ in table.entries("web", now=1.0)) == ["k1", "k3", "k5"]
    assert table.lookup("mail", "k0", now=1.0) == "s0"  # other pools untouched
    table.forget("web", "k1")
    table.forget("web", "missing")
    table.forget("nopool", "k1")
    assert len(table) == 3
    assert table.forget_server("nopool", "s0") == 0
    assert table.expire(now=1000.0) == 3  # stale heap items of forgotten entries are harmless
    assert len(table) == 0


def test_forget_pool_and_keep_pools() -> None:
    table = PersistenceTable()
    for pool in ("vs1", "vs1/sub-a", "vs1/sub-b", "vs2"):
        for i in range(3):
            table.assign(pool, f"k{i}", "s", timeout=60.0, now=0.0)
    assert table.forget_pool("vs2") == 3
    assert table.forget_pool("vs2") == 0
    table.keep_pools(["vs1", "vs1/sub-b", "vs9"])
    assert len(table) == 6
    assert table.entries("vs1/sub-a", now=1.0) == []
    assert len(table.entries("vs1/sub-b", now=1.0)) == 3


def test_forgetting_a_big_pool_does_not_leave_a_big_heap() -> None:
    table = PersistenceTable()
    for i in range(5000):
        table.assign("big", f"k{i}", "s", timeout=3600.0, now=0.0)
    table.assign("small", "k", "s", timeout=3600.0, now=0.0)
    table.forget_pool("big")
    assert len(table._heap) <= 1024 + 2
    assert table.lookup("small", "k", now=1.0) == "s"
    assert table.expire(now=4000.0) == 1


def test_dump_load_round_trip() -> None:
    source = PersistenceTable()
    source.assign("web", "10.0.0.0/24", "10.9.0.1:443", timeout=100.0, now=0.0)
    source.assign("web", "cookie-token", "10.9.0.2:443", timeout=50.0, now=0.0)
    source.assign("mail", "[2001:db8::]/64", "[2001:db8::25]:25", timeout=100.0, now=0.0)
    source.assign("web", "old", "10.9.0.1:443", timeout=5.0, now=0.0)
    dumped = json.loads(json.dumps(source.dump(now=20.0)))  # JSON-able
    assert len(dumped) == 3  # the expired one is not exported
    assert {"pool", "key", "server", "remaining"} <= set(dumped[0])

    target = PersistenceTable()
    target.load(dumped, now=1000.0)  # another clock: only the remaining time matters
    assert sorted(target.dump(now=1000.0), key=lambda d: (d["pool"], d["key"])) == sorted(
        source.dump(now=20.0), key=lambda d: (d["pool"], d["key"])
    )
    assert target.lookup("web", "cookie-token", now=1029.0) == "10.9.0.2:443"
    # after use it slides by the original timeout (50 s), not by what remained at dump time
    assert target.lookup("web", "cookie-token", now=1078.0) == "10.9.0.2:443"
    assert target.lookup("web", "10.0.0.0/24", now=1081.0) is None  # 80 s were left
    target.load([{"pool": "p", "key": "k", "server": "s", "remaining": 0}], now=0.0)
    assert target.entries("p", now=0.0) == []


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PersistenceTable().assign("web", "k", "s", timeout=0.0, now=0.0)
