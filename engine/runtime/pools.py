"""Real servers and pools as a worker sees them: the model plus live health and counters.

Choosing a server is: filter the servers that may take a new connection, honour persistence,
otherwise ask the scheduler. The decisions themselves are the pure functions in
``passerelle.engine.balance``; this module only feeds them live state.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from time import monotonic
from typing import TYPE_CHECKING, Final, Protocol

from passerelle.engine.balance.persistence import cookie_token, source_key
from passerelle.engine.balance.scheduling import make_scheduler
from passerelle.engine.stats.counters import ACTIVE, HEALTH_UP, WIDTH, CounterTable

if TYPE_CHECKING:  # a worker reads the plain copy (runtime/snapshot.py), never pydantic
    from passerelle.engine.model.config import Pool, RealServer, TLSReencrypt


def pool_id(vs_name: str, subvs_name: str | None = None) -> str:
    """Identity of a pool in persistence, health and statistics: 'VS' or 'VS/SubVS'."""
    return f"{vs_name}/{subvs_name}" if subvs_name else vs_name


def server_slot_key(pool: str, server_key: str) -> str:
    return f"srv:{pool}|{server_key}"


def health_target_id(pool: str, server_key: str) -> str:
    return f"{pool}|{server_key}"


def connection_pool_key(address: str, port: int, sni: str | None, tls: bool) -> str:
    """Which pooled server connections are alike: address, port, whether TLS and the server
    name sent in TLS. A string, because two look-ups per request hash it and a string keeps its
    hash where a tuple computes it again. The name comes last and only when there is one, so
    no two keys are spelled the same."""
    where = f"{'tls' if tls else 'tcp'}|{address}|{port}"
    return where if sni is None else f"{where}|{sni}"


class PersistenceAuthority(Protocol):
    """Where persistence decisions live so that they hold across workers and reloads."""

    def persist(self, pool: str, key: str, candidate: str, timeout: float) -> str: ...

    def learn(self, pool: str, key: str, server: str, timeout: float) -> None: ...

    def persist_later(
        self, pool: str, key: str, candidate: str, timeout: float, answer: Callable[[str], None]
    ) -> None:
        """``persist`` for a caller that must not wait: ``answer`` gets its result later."""


# How long a worker reuses the authority's answer for a key without asking again. A round trip
# to the supervisor for every request would cost more than proxying the request, and would make
# the supervisor a bottleneck shared by all workers. Another worker's learn() (a server cookie
# given to another server) is seen at most this late; health and limits are always live.
DECISION_REUSE: Final = 1.0
RECENT_MAX: Final = 65536  # keys remembered per pool; past it, expired ones are dropped
SOURCE_KEYS_KEPT: Final = 4096  # client addresses whose source-persistence key a pool remembers


class RecentDecisions:
    """The persistence authority as one pool of one worker sees it: answers are remembered
    briefly, and what this worker learns is remembered at once (its next request must follow).

    An answer in use is asked again in the background once half its reuse time has gone, so
    that it is renewed before it runs out. Otherwise every request of a busy client would find
    it gone at the same moment and all of them would wait on the authority together."""

    __slots__ = ("_asking", "_authority", "_entries", "_pool", "_reuse", "_timeout")

    def __init__(self, authority: PersistenceAuthority, pool: str, timeout: float) -> None:
        self._authority = authority
        self._pool = pool
        self._timeout = timeout
        # Half the persistence timeout at most: a client in use still refreshes the
        # authority's sliding timeout before it runs out.
        self._reuse = min(DECISION_REUSE, timeout / 2)
        self._entries: dict[str, tuple[str, float]] = {}
        self._asking: set[str] = set()  # keys asked again in the background, not yet answered

    def recall(self, key: str) -> str | None:
        entry = self.recall_with_time(key)
        return None if entry is None else entry[0]

    def recall_with_time(self, key: str) -> tuple[str, float] | None:
        """(server key, monotonic time the answer was had), if it may still be reused."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        server, until = entry
        left = until - monotonic()
        if left <= 0:
            return None
        reuse = self._reuse
        if left < reuse / 2 and key not in self._asking:
            self._ask_again(key, server)
        return server, until - reuse

    def _ask_again(self, key: str, server: str) -> None:
        self._asking.add(key)

        def answered(held: str) -> None:
            self._asking.discard(key)
            self._remember(key, held)

        self._authority.persist_later(self._pool, key, server, self._timeout, answered)

    def persist(self, pool: str, key: str, candidate: str, timeout: float) -> str:
        held = self._authority.persist(pool, key, candidate, timeout)
        self._remember(key, held)
        return held

    def learn(self, pool: str, key: str, server: str, timeout: float) -> None:
        self._remember(key, server)
        self._authority.learn(pool, key, server, timeout)

    def _remember(self, key: str, server: str) -> None:
        now = monotonic()
        entries = self._entries
        if len(entries) >= RECENT_MAX and key not in entries:
            for stale in [k for k, (_, until) in entries.items() if until <= now]:
                del entries[stale]
            if len(entries) >= RECENT_MAX:
                entries.clear()
        entries[key] = (server, now + self._reuse)


class ServerRuntime:
    __slots__ = (
        "address",
        "down_at",
        "health",
        "key",
        "max_connections",
        "model",
        "plain_key",
        "port",
        "slot",
        "state",
        "table",
        "token",
        "weight",
    )

    def __init__(self, model: RealServer, slot: int, table: CounterTable) -> None:
        self.model = model
        self.address = model.address
        self.port = model.port
        self.key = model.key
        self.weight = model.weight
        self.max_connections = model.max_connections
        self.state = model.state
        self.slot = slot
        self.table = table
        # The table's views, held here: read per request, an attribute of the (interpreted)
        # table would be a generic look-up each time.
        self.health = table.health
        self.down_at = table.down_at
        self.token = cookie_token(self.key)
        # Which idle plain-HTTP connections may carry a request here (see upstream.PoolKey).
        self.plain_key = connection_pool_key(self.address, self.port, None, False)

    @property
    def active(self) -> int:
        return self.table.value(self.slot, ACTIVE)

    @property
    def healthy(self) -> bool:
        return self.health[self.slot] == HEALTH_UP

    def usable(self) -> bool:
        """May take a new connection now: enabled, healthy and under its connection limit."""
        if self.state != "enabled" or self.health[self.slot] != HEALTH_UP:
            return False
        limit = self.max_connections
        return not (limit and self.table.value(self.slot, ACTIVE) >= limit)


class PoolRuntime:
    def __init__(
        self,
        ident: str,
        model: Pool,
        slots: Callable[[str], int],
        table: CounterTable,
        authority: PersistenceAuthority,
    ) -> None:
        self.id = ident
        self.model = model
        self.persistence = model.persistence
        # Read per request: a native attribute, where the model's would be a dictionary look-up.
        self.persistence_mode: str = model.persistence.mode
        self.servers = [
            ServerRuntime(s, slots(server_slot_key(ident, s.key)), table)
            for s in model.real_servers
        ]
        self.by_key = {s.key: s for s in self.servers}
        self.by_token = {s.token: s for s in self.servers}
        self.scheduler = make_scheduler(model.scheduling)
        self.authority = RecentDecisions(authority, ident, model.persistence.timeout)
        self._available: list[ServerRuntime] = []
        self._source_keys: dict[str, str] = {}
        self._table = table
        # Without connection limits, only a health change alters which servers may take
        # connections: the list is then kept for as long as the health generation stays.
        self._limited = any(s.max_connections for s in self.servers)
        self._generation = -1

    def available(self) -> list[ServerRuntime]:
        if self._limited:
            return self._usable()
        generation = self._table.health_generation[0]
        if generation != self._generation:
            self._generation = generation
            return self._usable()
        return self._available

    def _usable(self) -> list[ServerRuntime]:
        candidates = [s for s in self.servers if s.usable()]
        # The same servers as last time give the same list object: schedulers keep what they
        # derived from a list (the rotation order) until the set of servers changes.
        if candidates == self._available:
            return self._available
        self._available = candidates
        return candidates

    def schedule(
        self, client_ip: str, exclude: Sequence[ServerRuntime] = ()
    ) -> ServerRuntime | None:
        candidates = self.available()
        if exclude:
            candidates = [s for s in candidates if s not in exclude]
        return self.scheduler.pick(candidates, client_ip)  # type: ignore[return-value]

    def choose(
        self,
        client_ip: str,
        persist_key: str | None = None,
        exclude: Sequence[ServerRuntime] = (),
    ) -> ServerRuntime | None:
        """A server for a new connection or request, honouring persistence when a key is given."""
        if persist_key is not None:
            server = self.remembered(persist_key)
            if server is not None and server not in exclude:
                return server
        candidate = self.schedule(client_ip, exclude)
        if candidate is None or persist_key is None:
            return candidate
        # Asked afresh also when the remembered server can no longer be used, so that the
        # authority moves the client once, for every worker.
        held = self.authority.persist(self.id, persist_key, candidate.key, self.persistence.timeout)
        server = self.by_key.get(held)
        # The authority checks health itself; a limit or exclusion is the worker's to judge.
        if server is None or server in exclude or not server.usable():
            return candidate
        return server

    def remembered(self, persist_key: str) -> ServerRuntime | None:
        """The usable server this worker remembers for ``persist_key``, asking nobody."""
        entry = self.authority.recall_with_time(persist_key)
        if entry is None:
            return None
        held, decided = entry
        server = self.by_key.get(held)
        if server is None or not server.usable():
            return None
        # A server that went down since (even if back up now) lost its clients to others at the
        # authority, maybe through another worker: ask again rather than take them back.
        if server.down_at[server.slot] >= decided:
            return None
        return server

    def source_persist_key(self, client_ip: str) -> str | None:
        if self.persistence_mode != "source_ip":
            return None
        # Asked for every request of a connection: the key of a client address is kept.
        key = self._source_keys.get(client_ip)
        if key is None:
            if len(self._source_keys) >= SOURCE_KEYS_KEPT:
                self._source_keys.clear()
            p = self.persistence
            key = "ip:" + source_key(client_ip, p.ipv4_prefix, p.ipv6_prefix)
            self._source_keys[client_ip] = key
        return key

    def counter_index(self, server: ServerRuntime, counter: int) -> int:
        return server.slot * WIDTH + counter


class PoolRoute:
    """A pool plus what the proxy does on its way there (re-encryption).

    A compiled class, unlike the service that holds it: every request reads its fields.
    """

    def __init__(
        self,
        pool: PoolRuntime,
        name: str | None,
        slot: int,
        tls_client: ssl.SSLContext | None,
        reencrypt: TLSReencrypt | None,
    ) -> None:
        self.pool = pool
        self.name = name  # SubVS name, None for the service's own pool
        self.slot = slot  # statistics slot of the SubVS (or of the service)
        self.tls_client = tls_client
        self.reencrypt = reencrypt
