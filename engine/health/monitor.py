"""Runs the health checks of all real servers: one greenlet per target, changes announced."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import gevent
from gevent import Greenlet

from passerelle.engine.health.probes import probe
from passerelle.engine.health.state import HealthState

if TYPE_CHECKING:  # imported by the supervisor before its workers are forked
    from passerelle.engine.model.config import HealthCheck

log = logging.getLogger(__name__)

_JITTER = 0.1  # fraction of the interval, so servers added together do not probe in lockstep


@dataclass(frozen=True, slots=True)
class Target:
    address: str
    port: int
    check: HealthCheck


@dataclass(slots=True)
class TargetStatus:
    up: bool | None
    detail: str
    since: float  # time.time() of the last change of `up` (or of the start of checking)
    checks: int  # probes run since checking started
    failures: int  # failed probes since checking started


class HealthMonitor:
    """Keeps the set of checked targets equal to the wanted set given to :meth:`update`.

    ``on_change(target_id, up, detail)`` runs in a greenlet of the hub whenever a target's `up`
    changes, its first result included.
    """

    def __init__(self, on_change: Callable[[str, bool, str], None]) -> None:
        self._on_change = on_change
        self._targets: dict[str, Target] = {}
        self._status: dict[str, TargetStatus] = {}
        self._greenlets: dict[str, Greenlet] = {}

    def update(self, targets: Mapping[str, Target]) -> None:
        """Check exactly ``targets``, keyed by target id.

        An unchanged target keeps its state and schedule (a config reload must not flap
        servers); a changed one starts over from ``up=None``; removed ones stop at once.
        """
        for target_id, target in list(self._targets.items()):
            if targets.get(target_id) != target:
                self._forget(target_id)
        for target_id, target in targets.items():
            if target_id not in self._targets:
                self._start(target_id, target)

    def status(self) -> dict[str, TargetStatus]:
        """A snapshot: the returned objects do not change afterwards."""
        return {target_id: replace(status) for target_id, status in self._status.items()}

    def is_up(self, target_id: str) -> bool | None:
        status = self._status.get(target_id)
        return None if status is None else status.up

    def stop(self) -> None:
        for target_id in list(self._targets):
            self._forget(target_id)

    def _start(self, target_id: str, target: Target) -> None:
        status = TargetStatus(
            up=None, detail="not checked yet", since=time.time(), checks=0, failures=0
        )
        run = self._announce_unchecked if target.check.type == "none" else self._check_forever
        self._targets[target_id] = target
        self._status[target_id] = status
        self._greenlets[target_id] = gevent.spawn(run, target_id, target, status)

    def _forget(self, target_id: str) -> None:
        del self._targets[target_id]
        del self._status[target_id]
        # Not blocking: update() may run inside on_change, i.e. in the greenlet being killed.
        self._greenlets.pop(target_id).kill(block=False)

    def _announce_unchecked(self, target_id: str, target: Target, status: TargetStatus) -> None:
        status.up = True
        status.detail = "no health check"
        status.since = time.time()
        self._announce(target_id, True, status.detail)

    def _check_forever(self, target_id: str, target: Target, status: TargetStatus) -> None:
        check = target.check
        state = HealthState(check.retries, check.rise)
        # Monotonic, start to start: a slow probe does not push the following ones later.
        next_at = time.monotonic()
        first = True
        while True:
            result = probe(target.address, target.port, check)
            status.checks += 1
            status.failures += not result.ok
            status.detail = result.detail
            if state.record(result.ok):
                status.up = state.up
                status.since = time.time()
                self._announce(target_id, result.ok, result.detail)
            next_at += check.interval
            if first:
                next_at += random.uniform(0.0, _JITTER * check.interval)
                first = False
            now = time.monotonic()
            # A probe that overran its slot is followed at once, not by a burst of catch-ups.
            next_at = max(next_at, now)
            gevent.sleep(next_at - now)

    def _announce(self, target_id: str, up: bool, detail: str) -> None:
        try:
            self._on_change(target_id, up, detail)
        except Exception:
            # The listener's bug must not silence the health checks of this server.
            log.exception("health change listener failed for %s", target_id)
