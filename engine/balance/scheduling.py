"""Scheduling methods: which real server of a pool takes the next new connection.

Each worker process owns its schedulers; a scheduler only sees the servers that may take a
connection right now, in configuration order, and that set may change between two picks
(health checks, draining, connection limits). Every method therefore keys its state by the
server's ``key`` rather than by position, so fairness survives servers leaving and returning.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Final, Protocol, TypeVar


class Candidate(Protocol):
    # Read only: a server's active count is computed from the shared counters.
    @property
    def key(self) -> str:
        """ "address:port": stable identity of a real server within its pool."""

    @property
    def weight(self) -> int:
        """0..65535; 0 means "no new connections" for the weighted methods."""

    @property
    def active(self) -> int:
        """Current active connections to this server, all workers summed."""


C = TypeVar("C", bound=Candidate)


class Scheduler:
    """Picks a candidate for a new connection or request.

    A base class rather than a Protocol: compiled, a call through a Protocol is looked up by
    name on every request, a call through a base class goes through the method table."""

    __slots__ = ()

    def pick(self, candidates: Sequence[C], client_ip: str) -> C | None:
        raise NotImplementedError


class _Rotation:
    """Where the last pick landed, so the next one continues after it.

    When the last picked server has left the candidate set, the rotation continues with the
    server that followed it in the order seen at that pick, instead of restarting at the
    first server (which would overload the first server at every change).
    """

    __slots__ = ("_index", "_last", "_order", "_seen")

    def __init__(self) -> None:
        self._last: str | None = None
        self._index = 0  # where _last was in _seen
        self._seen: object = None  # the sequence _order was taken from (identity check only)
        self._order: tuple[str, ...] = ()

    def start(self, candidates: Sequence[Candidate]) -> int:
        """Index in ``candidates`` (non-empty) at which the rotation continues."""
        last = self._last
        if last is None:
            return 0
        n = len(candidates)
        if candidates is self._seen:  # the list of the last pick, unchanged
            i = self._index + 1
            return i if i < n else 0
        for i in range(n):
            if candidates[i].key == last:
                return i + 1 if i + 1 < n else 0
        order = self._order
        try:
            j = order.index(last)
        except ValueError:
            return 0
        position = {c.key: i for i, c in enumerate(candidates)}
        for key in order[j + 1 :] + order[:j]:
            found = position.get(key)
            if found is not None:
                return found
        return 0

    def picked(self, candidates: Sequence[Candidate], index: int) -> None:
        self._last = candidates[index].key
        self._index = index
        # Callers usually reuse one list until the set changes: copy the order only then.
        if candidates is not self._seen:
            self._seen = candidates
            self._order = tuple(c.key for c in candidates)


class RoundRobin(Scheduler):
    """Each candidate in turn, weights ignored."""

    __slots__ = ("_rotation",)

    def __init__(self) -> None:
        self._rotation = _Rotation()

    def pick(self, candidates: Sequence[C], client_ip: str) -> C | None:
        if not candidates:
            return None
        i = self._rotation.start(candidates)
        self._rotation.picked(candidates, i)
        return candidates[i]


class WeightedRoundRobin(Scheduler):
    """Smooth weighted round robin (nginx): 5:1:1 gives a a b a c a a, not a a a a a b c."""

    __slots__ = ("_current",)

    def __init__(self) -> None:
        self._current: dict[str, int] = {}

    def pick(self, candidates: Sequence[C], client_ip: str) -> C | None:
        current = self._current
        if len(current) > 4 * len(candidates) + 64:
            # Servers removed by reloads would otherwise stay here forever.
            keep = {c.key for c in candidates}
            self._current = current = {k: v for k, v in current.items() if k in keep}
        total = 0
        best: C | None = None
        best_current = 0
        for c in candidates:
            weight = c.weight
            if weight <= 0:
                continue
            value = current.get(c.key, 0) + weight
            current[c.key] = value
            total += weight
            if best is None or value > best_current:
                best, best_current = c, value
        if best is not None:
            current[best.key] = best_current - total
        return best


class LeastConnection(Scheduler):
    """Fewest active connections; ties rotate, so an idle pool is served round robin."""

    __slots__ = ("_rotation",)

    def __init__(self) -> None:
        self._rotation = _Rotation()

    def pick(self, candidates: Sequence[C], client_ip: str) -> C | None:
        n = len(candidates)
        if not n:
            return None
        start = self._rotation.start(candidates)
        best = start
        best_active = candidates[start].active
        for step in range(1, n):
            i = start + step
            if i >= n:
                i -= n
            active = candidates[i].active
            if active < best_active:
                best, best_active = i, active
        self._rotation.picked(candidates, best)
        return candidates[best]


class WeightedLeastConnection(Scheduler):
    """Lowest active/weight (compared by cross-multiplication, no floats); ties rotate.

    Weight 0 servers take no new connections.
    """

    __slots__ = ("_rotation",)

    def __init__(self) -> None:
        self._rotation = _Rotation()

    def pick(self, candidates: Sequence[C], client_ip: str) -> C | None:
        n = len(candidates)
        if not n:
            return None
        start = self._rotation.start(candidates)
        best = -1
        best_active = best_weight = 0
        for step in range(n):
            i = start + step
            if i >= n:
                i -= n
            c = candidates[i]
            weight = c.weight
            if weight <= 0:
                continue
            if best < 0 or c.active * best_weight < best_active * weight:
                best, best_active, best_weight = i, c.active, weight
        if best < 0:
            return None
        self._rotation.picked(candidates, best)
        return candidates[best]


class FixedWeighting(Scheduler):
    """The highest weight takes everything; the others are hot standbys in weight order.

    Equal weights go to the first in configuration order; weight 0 servers are never used.
    """

    __slots__ = ()

    def pick(self, candidates: Sequence[C], client_ip: str) -> C | None:
        best: C | None = None
        best_weight = 0
        for c in candidates:
            if c.weight > best_weight:
                best, best_weight = c, c.weight
        return best


_MASK64: Final = (1 << 64) - 1
_IPV4_MAPPED: Final = "::ffff:"


def _hash64(text: str) -> int:
    # Not hash(): it is salted per process, and every worker must send a client to the same server.
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _mix64(x: int) -> int:
    """splitmix64 finaliser: spreads (client hash ^ server hash) over all 64 bits."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


class SourceIPHash(Scheduler):
    """Weighted rendezvous (highest random weight) hashing of the client address.

    Every server gets a score ``weight / -ln(u)`` with ``u`` uniform in (0, 1) derived from
    (client, server); the highest score wins. A server leaving moves only its own clients, a
    server returning takes back only the clients it had, and the share of each server is
    proportional to its weight. Identical in every process and across restarts.
    """

    __slots__ = ("_server_hash",)

    def __init__(self) -> None:
        self._server_hash: dict[str, int] = {}

    def pick(self, candidates: Sequence[C], client_ip: str) -> C | None:
        if client_ip.startswith(_IPV4_MAPPED) and "." in client_ip:
            client_ip = client_ip[len(_IPV4_MAPPED) :]  # dual-stack sockets: same client, same key
        client = _hash64(client_ip)
        server_hash = self._server_hash
        if len(server_hash) > 4096:
            server_hash.clear()
        best: C | None = None
        best_score = 0.0
        for c in candidates:
            weight = c.weight
            if weight <= 0:
                continue
            h = server_hash.get(c.key)
            if h is None:
                h = server_hash[c.key] = _hash64(c.key)
            u = ((_mix64(client ^ h) >> 11) + 0.5) * (1.0 / (1 << 53))
            score = weight / -math.log(u)
            if best is None or score > best_score:
                best, best_score = c, score
        return best


_METHODS: Final[dict[str, type[Scheduler]]] = {
    "round_robin": RoundRobin,
    "weighted_round_robin": WeightedRoundRobin,
    "least_connection": LeastConnection,
    "weighted_least_connection": WeightedLeastConnection,
    "fixed_weighting": FixedWeighting,
    "source_ip_hash": SourceIPHash,
}
# Every one of the model's SCHEDULING_METHODS has a class here: tests/engine/balance checks it
# (importing the model here would bring pydantic into the workers).


def make_scheduler(method: str) -> Scheduler:
    """A fresh scheduler for one pool; ``method`` is one of the model's SCHEDULING_METHODS."""
    try:
        return _METHODS[method]()
    except KeyError:
        raise ValueError(f"unknown scheduling method {method!r}") from None
