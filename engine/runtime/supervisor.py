"""The supervisor: starts one worker per core, feeds them config snapshots, and owns what must
be single across workers — health checking, the persistence authority and statistics.

Workers are forked at start so that they share the supervisor's memory; one that dies is
replaced by a new interpreter, since by then forking would copy live greenlets (see ``launch``).

It takes Config objects; where they come from (a file, the store, the API) is the management
plane's business, so this module imports nothing from it.
"""

from __future__ import annotations

import _socket
import base64
import contextlib
import logging
import os
import pickle
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent
from gevent import subprocess
from gevent.event import Event

from passerelle.engine.balance.persistence import PersistenceTable
from passerelle.engine.runtime.control import Channel, ChannelClosed, Message
from passerelle.engine.runtime.launch import ForkedWorker, fork_safe, fork_worker, prepare_to_share
from passerelle.engine.runtime.pools import (
    PoolRuntime,
    health_target_id,
    pool_id,
    server_slot_key,
)
from passerelle.engine.runtime.services import slot_keys
from passerelle.engine.runtime.snapshot import plain
from passerelle.engine.stats.counters import (
    ACTIVE,
    HEALTH_DOWN,
    HEALTH_UNKNOWN,
    HEALTH_UP,
    SLOTS,
    WIDTH,
    CounterTable,
)
from passerelle.engine.tls.tickets import new_keys

if TYPE_CHECKING:  # imported after the workers are forked (see ``config`` and ``health``)
    from passerelle.engine.health.monitor import HealthMonitor
    from passerelle.engine.model.config import Config

log = logging.getLogger("passerelle.supervisor")

FIRST_CHECK_WAIT = 2.0  # a reload waits this long at most for new servers' first health check


def _pickled(config: Config) -> str:
    """The validated configuration as the worker takes it back (``worker.unpickled_config``):
    plain objects (``snapshot.plain``), so that a worker neither validates it again nor imports
    pydantic at all. Only this supervisor and the workers it started are on the channel."""
    return base64.b64encode(pickle.dumps(plain(config), pickle.HIGHEST_PROTOCOL)).decode("ascii")


def _runtime_dir() -> Path:
    """A new private folder for the counters, in /dev/shm where there is one. Made without
    ``tempfile``: it and ``shutil`` (with the compression modules they import) would be resident
    in every worker forked after, which never use them."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(os.environ.get("TMPDIR", "/tmp"))
    while True:
        path = base / f"passerelle-{os.urandom(6).hex()}"
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        return path


class SlotMap:
    """Statistics slots by key; a key keeps its slot for the life of the engine."""

    def __init__(self) -> None:
        self.slots: dict[str, int] = {}

    def assign(self, keys: list[str]) -> dict[str, int]:
        for key in keys:
            if key not in self.slots:
                if len(self.slots) >= SLOTS:
                    raise RuntimeError("too many virtual services and real servers")
                self.slots[key] = len(self.slots)
        return self.slots


class NoAuthority:
    """The supervisor's own pool view never asks anyone: it is the authority."""

    def persist(self, pool: str, key: str, candidate: str, timeout: float) -> str:
        return candidate

    def persist_later(
        self, pool: str, key: str, candidate: str, timeout: float, answer: Callable[[str], None]
    ) -> None:
        answer(candidate)

    def learn(self, pool: str, key: str, server: str, timeout: float) -> None:
        return None


class WorkerProcess:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: subprocess.Popen | ForkedWorker | None = None
        self.channel: Channel | None = None
        self.version = 0
        self.errors: list[str] = []


class Supervisor:
    def __init__(
        self,
        workers: int | None = None,
        log_level: str = "INFO",
        runtime_dir: Path | None = None,
    ) -> None:
        self.worker_count = workers or os.cpu_count() or 1
        self.log_level = log_level
        self.runtime_dir = runtime_dir or _runtime_dir()
        self.table = CounterTable(self.runtime_dir / "counters", self.worker_count, create=True)
        self.slots = SlotMap()
        self.persistence = PersistenceTable()
        self._health: HealthMonitor | None = None
        self.health_detail: dict[str, str] = {}
        self._config: Config | None = None
        self.version = 0
        # One set for the engine's life, so that TLS sessions resume on any worker.
        self.ticket_keys = new_keys()
        self.pools: dict[str, PoolRuntime] = {}
        self.workers = [WorkerProcess(i) for i in range(self.worker_count)]
        self.started = time.time()
        self._stopping = False
        self._first_results: dict[str, Event] = {}
        self._snapshot: Message | None = None
        self.accepting = True
        self.on_applied: list[Callable[[int], None]] = []

    @property
    def config(self) -> Config:
        """The configuration last applied; an empty one before the first."""
        if self._config is None:
            # Imported on first use, after the workers are forked: they never hold pydantic.
            from passerelle.engine.model.config import Config

            self._config = Config()
        return self._config

    @property
    def health(self) -> HealthMonitor:
        """The health monitor, made on first use: after the workers are forked, which never
        check health and so never hold its code."""
        if self._health is None:
            from passerelle.engine.health.monitor import HealthMonitor

            self._health = HealthMonitor(self._health_changed)
        return self._health

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        forking = fork_safe()
        if forking:
            prepare_to_share()
        else:
            log.info("event loop already running: workers start as new interpreters")
        for worker in self.workers:
            self._spawn(worker, fork=forking)
        gevent.spawn(self._expire_persistence)

    def stop(self) -> None:
        self._stopping = True
        if self._health is not None:
            self._health.stop()
        for worker in self.workers:
            if worker.channel is not None and not worker.channel.closed:
                with contextlib.suppress(ChannelClosed):
                    worker.channel.send({"type": "stop", "id": 0})
        deadline = time.monotonic() + 3
        for worker in self.workers:
            if worker.process is None:
                continue
            try:
                worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
        self.table.close()
        import shutil  # only at the end: see _runtime_dir

        shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def _spawn(self, worker: WorkerProcess, fork: bool = False) -> None:
        # Plain sockets, not gevent ones: a gevent socket belongs to the event loop it was made
        # in, which a forked worker throws away.
        ours, theirs = _socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        fd = theirs.detach()
        if worker.process is not None:
            self._forget_active(worker.index)
        try:
            if fork:
                worker.process = fork_worker(
                    lambda: self._serve_forked(worker.index, fd), keep=[fd]
                )
            else:
                worker.process = self._exec(worker.index, fd)
        finally:
            os.close(fd)
        worker.channel = Channel(socket.socket(fileno=ours.detach()), self._handle)
        if self.version:
            self._send_config(worker)
        gevent.spawn(self._watch, worker, worker.process)

    def _exec(self, index: int, fd: int) -> subprocess.Popen:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "passerelle.engine.runtime.worker",
                "--fd",
                str(fd),
                "--index",
                str(index),
                "--workers",
                str(self.worker_count),
                "--counters",
                str(self.table.path),
                "--log-level",
                self.log_level,
            ],
            pass_fds=[fd],
        )

    def _serve_forked(self, index: int, fd: int) -> None:
        # Imported in the child: the supervisor itself never needs the data plane.
        from passerelle.engine.runtime.worker import serve

        serve(socket.socket(fileno=fd), index, self.table, self.log_level)

    def _forget_active(self, index: int) -> None:
        """A worker that died takes its active connections with it; totals are kept. Only
        assigned slots were ever written: touching all of them would make the whole row
        resident for nothing."""
        row = self.table.row(index)
        for slot in self.slots.slots.values():
            row[slot * WIDTH + ACTIVE] = 0

    def _watch(self, worker: WorkerProcess, process: subprocess.Popen | ForkedWorker) -> None:
        code = process.wait()
        if self._stopping or worker.process is not process:
            return
        log.error("worker %d exited with status %s; restarting it", worker.index, code)
        if worker.channel is not None:
            worker.channel.close()
        gevent.sleep(0.5)  # a worker that dies at once must not spin the CPU
        if not self._stopping:
            self._spawn(worker)

    # -- configuration -------------------------------------------------------------------

    def apply(self, config: Config, version: int) -> dict[str, Any]:
        """Make ``config`` live in every worker; returns per-worker errors (listeners etc.)."""
        slots = self.slots.assign(slot_keys(config))
        self._config = config
        self.version = version
        self.pools = self._build_pools(config, slots)
        self.persistence.keep_pools(self.pools)
        self._update_health(config, slots)
        self._snapshot = self._snapshot_message()
        for worker in self.workers:
            worker.errors = []
        greenlets = [gevent.spawn(self._send_config, w) for w in self.workers]
        gevent.joinall(greenlets, timeout=10)
        for callback in self.on_applied:
            callback(version)
        return {
            "version": version,
            "errors": sorted({e for w in self.workers for e in w.errors}),
        }

    def set_accepting(self, accepting: bool) -> None:
        """Open or close every virtual service listener (licence expiry); established
        connections are never touched."""
        if accepting == self.accepting:
            return
        self.accepting = accepting
        log.warning("virtual services %s new connections", "accept" if accepting else "refuse")
        if self.version:
            self._snapshot = self._snapshot_message()
            gevent.joinall([gevent.spawn(self._send_config, w) for w in self.workers], timeout=10)

    def _snapshot_message(self) -> Message:
        """Built once per version and sent to every worker (and to any restarted one)."""
        return {
            "type": "config",
            "version": self.version,
            "config": _pickled(self.config),
            "slots": dict(self.slots.slots),
            "accepting": self.accepting,
            "ticket_keys": self.ticket_keys.hex(),
        }

    def _send_config(self, worker: WorkerProcess) -> None:
        if worker.channel is None or self._snapshot is None:
            return
        try:
            reply = worker.channel.request(self._snapshot, timeout=10)
        except (ChannelClosed, gevent.Timeout) as exc:
            worker.errors = [f"worker {worker.index}: {exc}"]
            return
        worker.version = reply.get("version", 0)
        worker.errors = reply.get("errors", [])
        for error in worker.errors:
            log.error("worker %d: %s", worker.index, error)

    def _build_pools(self, config: Config, slots: dict[str, int]) -> dict[str, PoolRuntime]:
        pools: dict[str, PoolRuntime] = {}
        authority = NoAuthority()
        for vs in config.virtual_services:
            pools[pool_id(vs.name)] = PoolRuntime(
                pool_id(vs.name), vs, slots.__getitem__, self.table, authority
            )
            for sub in vs.subvs:
                ident = pool_id(vs.name, sub.name)
                pools[ident] = PoolRuntime(ident, sub, slots.__getitem__, self.table, authority)
        return pools

    # -- health --------------------------------------------------------------------------

    def _update_health(self, config: Config, slots: dict[str, int]) -> None:
        from passerelle.engine.health.monitor import Target

        targets: dict[str, Target] = {}
        for ident, pool in self.pools.items():
            for server in pool.servers:
                tid = health_target_id(ident, server.key)
                targets[tid] = Target(server.address, server.port, pool.model.health_check)
        known = self.health.status()
        new = [t for t in targets if t not in known or known[t].up is None]
        for tid in new:
            self.table.set_health(slots[server_slot_key(*tid.split("|", 1))], HEALTH_UNKNOWN)
            self._first_results[tid] = Event()
        self.health.update(targets)
        # Keep a just-added server out of a reload's way for no longer than its first check.
        deadline = time.monotonic() + FIRST_CHECK_WAIT
        for tid in new:
            event = self._first_results.get(tid)
            if event is not None:
                event.wait(timeout=max(0.0, deadline - time.monotonic()))
        self._first_results.clear()

    def _health_changed(self, target_id: str, up: bool, detail: str) -> None:
        pool, server_key = target_id.split("|", 1)
        slot = self.slots.slots.get(server_slot_key(pool, server_key))
        self.health_detail[target_id] = detail
        if slot is not None:
            if not up:  # before the health byte: a worker seeing DOWN also sees when
                self.table.down_at[slot] = time.monotonic()
            self.table.set_health(slot, HEALTH_UP if up else HEALTH_DOWN)
        if not up:
            self.persistence.forget_server(pool, server_key)
        log.info("real server %s in %s is %s: %s", server_key, pool, "up" if up else "down", detail)
        event = self._first_results.get(target_id)
        if event is not None:
            event.set()

    # -- persistence authority -------------------------------------------------------------

    def _handle(self, message: Message) -> Message | None:
        kind = message.get("type")
        now = time.monotonic()
        if kind == "persist":
            return {
                "server": self.persist(
                    message["pool"], message["key"], message["server"], message["ttl"], now
                )
            }
        if kind == "learn":
            self.persistence.learn(
                message["pool"], message["key"], message["server"], message["ttl"], now
            )
            return None
        return {"error": f"unknown message {kind!r}"}

    def persist(self, pool: str, key: str, candidate: str, ttl: float, now: float) -> str:
        held = self.persistence.lookup(pool, key, now)
        if held is not None:
            runtime = self.pools.get(pool)
            server = runtime.by_key.get(held) if runtime else None
            if server is not None and server.usable():
                return held
            self.persistence.forget(pool, key)
        return self.persistence.assign(pool, key, candidate, ttl, now)

    def _expire_persistence(self) -> None:
        while not self._stopping:
            gevent.sleep(1.0)
            self.persistence.expire(time.monotonic())
