"""Persistence: sending a returning client back to the real server it used before.

The key helpers turn what identifies a client (its network, a cookie, a header) into a string;
``PersistenceTable`` maps (pool, key) to a server key with a sliding timeout. One table lives in
the supervisor process so that every worker, and every configuration reload, sees the same
decisions. Time is always passed in (monotonic seconds): nothing here reads a clock.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import socket
from collections.abc import Iterable
from typing import Any, Final

_IPV4_MAPPED_PREFIX: Final = b"\0" * 10 + b"\xff\xff"
_HEADER_KEY_MAX: Final = 64


def source_key(client_ip: str, ipv4_prefix: int, ipv6_prefix: int) -> str:
    """The client's network in CIDR form, e.g. ``10.1.2.0/24`` or ``2001:db8::/64``.

    An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``, as dual-stack sockets report IPv4
    clients) counts as IPv4, so a client keeps its server whichever socket it came in on.
    A zone index (``fe80::1%eth0``) is ignored. Raises ValueError for a non-address.
    """
    address = client_ip.partition("%")[0]
    try:
        packed = socket.inet_pton(socket.AF_INET, address)
    except OSError:
        try:
            packed = socket.inet_pton(socket.AF_INET6, address)
        except OSError:
            raise ValueError(f"{client_ip!r} is not an IPv4 or IPv6 address") from None
        if packed[:12] == _IPV4_MAPPED_PREFIX:
            packed = packed[12:]
    if len(packed) == 4:
        family, bits, prefix = socket.AF_INET, 32, ipv4_prefix
    else:
        family, bits, prefix = socket.AF_INET6, 128, ipv6_prefix
    if not 0 <= prefix <= bits:
        raise ValueError(f"prefix /{prefix} out of range for a {bits}-bit address")
    mask = ((1 << bits) - 1) ^ ((1 << (bits - prefix)) - 1)
    network = (int.from_bytes(packed, "big") & mask).to_bytes(bits // 8, "big")
    return f"{socket.inet_ntop(family, network)}/{prefix}"


def cookie_token(server_key: str, secret: bytes = b"") -> str:
    """The cookie value that designates a server: opaque, and the same in every process.

    Without ``secret`` the token is an unkeyed hash, so someone who can guess the internal
    address space could recover the address by trying them all; pass an appliance-wide secret
    (up to 64 bytes, kept across reloads) to prevent that.
    """
    return hashlib.blake2b(
        server_key.encode(), digest_size=8, key=secret, person=b"passerelle-ck"
    ).hexdigest()


def _unquote(value: bytes) -> bytes:
    if len(value) >= 2 and value[:1] == b'"' and value[-1:] == b'"':
        return value[1:-1]
    return value


def find_cookie(cookie_headers: list[bytes], name: str) -> str | None:
    """Value of cookie ``name`` in the request's Cookie header values, or None.

    Several Cookie headers may be present; pairs are ``a=1; b=2`` with any spacing; a quoted
    value comes back unquoted. When the name occurs more than once the first wins (browsers
    send the most specific path first).
    """
    wanted = name.encode("latin-1")
    for header in cookie_headers:
        if wanted not in header:  # most requests carry other cookies only: skip the split
            continue
        for pair in header.split(b";"):
            key, eq, value = pair.partition(b"=")
            if eq and key.strip() == wanted:
                return _unquote(value.strip()).decode("latin-1")
    return None


def set_cookie_value(name: str, token: str, style: str, secure: bool) -> bytes:
    """The Set-Cookie header value that pins the client to the server ``token`` designates.

    ``standard``: a session cookie, HttpOnly. ``ms-wsman``: Microsoft's rules for Lync/Skype
    for Business web services, whose clients read the cookie: not HttpOnly, no Expires or
    Max-Age (the engine sets it again on every response to a request that lacked it).
    """
    if style == "standard":
        value = f"{name}={token}; Path=/; HttpOnly"
    elif style == "ms-wsman":
        value = f"{name}={token}; Path=/"
    else:
        raise ValueError(f"unknown cookie style {style!r}")
    if secure:
        value += "; Secure"
    return value.encode("latin-1")


def set_cookie_values(headers: list[tuple[bytes, bytes]], name: str) -> list[str]:
    """Values the server response sets for cookie ``name`` (server-cookie learning), in order."""
    wanted = name.encode("latin-1")
    values: list[str] = []
    for header_name, header_value in headers:
        if len(header_name) != 10 or header_name.lower() != b"set-cookie":
            continue
        key, eq, rest = header_value.partition(b"=")
        if eq and key.strip() == wanted:
            values.append(_unquote(rest.partition(b";")[0].strip()).decode("latin-1"))
    return values


def header_key(value: bytes) -> str:
    """Persistence key for header mode: the value without surrounding whitespace.

    Values longer than 64 characters (tokens, Authorization-like headers) are replaced by a
    hash, which bounds the table's memory and keeps credentials out of dumps and HA sync.
    """
    value = value.strip()
    if len(value) <= _HEADER_KEY_MAX:
        return value.decode("latin-1")
    return "#" + hashlib.blake2b(value, digest_size=16).hexdigest()


class _Entry:
    __slots__ = ("expiry", "scheduled", "server", "timeout")

    def __init__(self, server: str, timeout: float, expiry: float) -> None:
        self.server = server
        self.timeout = timeout  # kept so that lookups can slide the expiry
        self.expiry = expiry
        self.scheduled = expiry  # time of this entry's live item in the expiry heap


class PersistenceTable:
    """The persistence authority's table: (pool, key) -> server key with a sliding timeout.

    One instance lives in the supervisor process; workers ask it, so decisions hold across
    workers and configuration reloads. Expiry is lazy and cheap: every entry has one item in a
    heap ordered by the time it was scheduled to expire; refreshing an entry only moves its
    ``expiry`` forward, and ``expire()`` reschedules the items it finds still in use. Entries
    past their expiry are never returned, even before ``expire()`` has collected them.
    """

    def __init__(self) -> None:
        self._pools: dict[str, dict[str, _Entry]] = {}
        self._heap: list[tuple[float, int, str, str, _Entry]] = []
        self._sequence = itertools.count()  # heap tie-breaker: entries are not comparable
        self._count = 0

    def __len__(self) -> int:
        """Entries held, including expired ones that ``expire()`` has not collected yet."""
        return self._count

    def _schedule(self, pool: str, key: str, entry: _Entry) -> None:
        entry.scheduled = entry.expiry
        heapq.heappush(self._heap, (entry.expiry, next(self._sequence), pool, key, entry))

    def _live(self, pool: str, key: str, now: float) -> _Entry | None:
        table = self._pools.get(pool)
        if table is None:
            return None
        entry = table.get(key)
        if entry is None or entry.expiry <= now:
            return None
        return entry

    def _store(self, pool: str, key: str, server: str, timeout: float, now: float) -> None:
        if timeout <= 0:
            raise ValueError("persistence timeout must be positive")
        table = self._pools.get(pool)
        if table is None:
            table = self._pools[pool] = {}
        entry = table.get(key)
        if entry is None:
            entry = table[key] = _Entry(server, timeout, now + timeout)
            self._count += 1
            self._schedule(pool, key, entry)
            return
        entry.server = server
        entry.timeout = timeout
        entry.expiry = now + timeout
        if entry.expiry < entry.scheduled:  # a shorter timeout than before: collect it sooner
            self._schedule(pool, key, entry)

    def lookup(self, pool: str, key: str, now: float) -> str | None:
        """The server that holds ``key``, refreshing its expiry; None if absent or expired."""
        entry = self._live(pool, key, now)
        if entry is None:
            return None
        entry.expiry = now + entry.timeout
        return entry.server

    def assign(self, pool: str, key: str, server: str, timeout: float, now: float) -> str:
        """Give ``key`` to ``server`` unless a live entry holds it already.

        Returns the server that holds the key afterwards: when two workers race for a new
        client, the first assignment wins and the second learns where the client went.
        """
        entry = self._live(pool, key, now)
        if entry is not None:
            entry.expiry = now + entry.timeout
            return entry.server
        self._store(pool, key, server, timeout, now)
        return server

    def learn(self, pool: str, key: str, server: str, timeout: float, now: float) -> None:
        """Give ``key`` to ``server`` whatever held it (a server set a cookie: it is the truth)."""
        self._store(pool, key, server, timeout, now)

    def forget(self, pool: str, key: str) -> None:
        table = self._pools.get(pool)
        if table is not None and table.pop(key, None) is not None:
            self._count -= 1
            if not table:
                del self._pools[pool]

    def forget_server(self, pool: str, server: str) -> int:
        """Drop the entries that point at ``server`` (it went down or was removed)."""
        table = self._pools.get(pool)
        if table is None:
            return 0
        gone = [key for key, entry in table.items() if entry.server == server]
        for key in gone:
            del table[key]
        if not table:
            del self._pools[pool]
        self._count -= len(gone)
        self._compact()
        return len(gone)

    def forget_pool(self, pool: str) -> int:
        table = self._pools.pop(pool, None)
        if table is None:
            return 0
        self._count -= len(table)
        self._compact()
        return len(table)

    def keep_pools(self, pools: Iterable[str]) -> None:
        """After a reload: drop the pools that no longer exist."""
        keep = set(pools)
        for pool in [p for p in self._pools if p not in keep]:
            self.forget_pool(pool)

    def expire(self, now: float) -> int:
        """Drop the entries whose timeout has run out; returns how many were dropped."""
        heap = self._heap
        pools = self._pools
        dropped = 0
        while heap and heap[0][0] <= now:
            scheduled, _, pool, key, entry = heapq.heappop(heap)
            table = pools.get(pool)
            if table is None or table.get(key) is not entry or entry.scheduled != scheduled:
                continue  # forgotten, replaced or rescheduled: this heap item is stale
            if entry.expiry > now:
                self._schedule(pool, key, entry)  # refreshed since it was scheduled
                continue
            del table[key]
            if not table:
                del pools[pool]
            dropped += 1
        self._count -= dropped
        return dropped

    def _compact(self) -> None:
        # Forgotten entries leave stale heap items until their time comes; after a big
        # forget_pool that could be most of the heap, so rebuild it from the live entries.
        if len(self._heap) <= 2 * self._count + 1024:
            return
        self._heap = [
            (entry.scheduled, next(self._sequence), pool, key, entry)
            for pool, table in self._pools.items()
            for key, entry in table.items()
        ]
        heapq.heapify(self._heap)

    def entries(self, pool: str, now: float) -> list[tuple[str, str, float]]:
        """Live entries of ``pool`` as (key, server, seconds left), without refreshing them."""
        table = self._pools.get(pool, {})
        return [(k, e.server, e.expiry - now) for k, e in table.items() if e.expiry > now]

    def dump(self, now: float) -> list[dict[str, Any]]:
        """Live entries as JSON-able dicts (pool, key, server, remaining, timeout)."""
        return [
            {
                "pool": pool,
                "key": key,
                "server": entry.server,
                "remaining": entry.expiry - now,
                "timeout": entry.timeout,
            }
            for pool, table in self._pools.items()
            for key, entry in table.items()
            if entry.expiry > now
        ]

    def load(self, items: list[dict[str, Any]], now: float) -> None:
        """Add entries from ``dump()`` (another node, a backup); they overwrite existing ones.

        Each entry keeps its remaining time; once used, it slides by its ``timeout`` (or by its
        remaining time when the item has no timeout). Items already expired are skipped.
        """
        for item in items:
            remaining = float(item["remaining"])
            if remaining <= 0:
                continue
            pool, key, server = str(item["pool"]), str(item["key"]), str(item["server"])
            timeout = float(item.get("timeout", remaining))
            self._store(pool, key, server, remaining, now)
            self._pools[pool][key].timeout = timeout if timeout > 0 else remaining
