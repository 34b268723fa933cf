"""Keeps the running engine on the store's latest configuration version.

New versions are committed by `passerelle config apply` (another process) and by the REST API
and HA replication (this process). Every commit writes the store's write-ahead log (SQLite WAL),
so on Linux the follower watches that file with inotify and checks the cheap latest-number query
as soon as it is written: a change reaches the workers within milliseconds, whichever process
made it. A poll of the same query stays as the safety net: every 50 ms while the log is not
watched (no inotify, a log file replaced and not yet watched again), every 2 s while it is. A
20 Hz poll of an idle store kept the supervisor waking on the workers' cores for ~1% of a core.

When an engine runs, `passerelle config apply` hands its file to it over the control socket
(``control``) and the engine syncs right after storing it, before it answers; the follow loop
then finds nothing new. The two never apply one version twice: syncs take turns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from gevent.lock import Semaphore
from gevent.select import select
from inotify_simple import INotify, flags

from passerelle.engine.manage.store import ConfigStore, StoreError
from passerelle.engine.model.config import Config

log = logging.getLogger("passerelle.follow")

POLL_INTERVAL = 0.05
# While the write-ahead log is watched every commit wakes the follower; the poll only guards
# against a write the watch did not report.
WATCHED_POLL_INTERVAL = 2.0
# Another process's commit becomes visible a moment after its log write (SQLite syncs the log
# before publishing the commit): after a write that showed nothing new, look again after this,
# then twice as long each time up to the poll interval. Writes that are not configuration
# versions (audit, API token use) thus cost a handful of cheap queries.
SETTLE_INTERVAL = 0.002


class WriteWatch:
    """Tells when one file is written (inotify); without inotify, waiting is only sleeping."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._inotify: INotify | None = None
        self._watch = -1
        try:
            self._inotify = INotify(nonblocking=True)
        except OSError:  # not Linux, or no inotify instances left
            return
        self._arm()

    @property
    def fd(self) -> int:
        return self._inotify.fileno() if self._inotify is not None else -1

    @property
    def watching(self) -> bool:
        return self._watch >= 0

    def _arm(self) -> None:
        # The file may not exist yet, or again: a failed attempt is retried at the next wait.
        if self._inotify is not None and self._watch < 0:
            try:
                self._watch = self._inotify.add_watch(self.path, flags.MODIFY)
            except OSError:
                self._watch = -1

    def wait(self, timeout: float) -> bool:
        """Whether the file was written before ``timeout`` seconds passed."""
        self._arm()
        if self._inotify is None or self._watch < 0:
            gevent.sleep(timeout)
            return False
        readable, _, _ = select([self._inotify], [], [], timeout)
        if not readable:
            return False
        written = False
        for event in self._inotify.read(timeout=0):
            written = written or bool(event.mask & flags.MODIFY)
            if event.mask & flags.IGNORED:  # deleted, or its file system unmounted
                self._watch = -1
        return written

    def close(self) -> None:
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
            self._watch = -1


class StoreFollower:
    def __init__(
        self,
        store: ConfigStore,
        apply: Callable[[Config, int], dict[str, Any]],
        interval: float = POLL_INTERVAL,
    ) -> None:
        self.store = store
        self.apply = apply
        self.interval = interval
        self.watched_interval = max(interval, WATCHED_POLL_INTERVAL)
        self.applied = 0
        # The follow loop and the control socket (which applies what it just stored before it
        # answers) both sync; applying yields to other greenlets, so one at a time, or the same
        # version would reach the workers twice.
        self._syncing = Semaphore()

    def sync(self) -> dict[str, Any] | None:
        """Apply the latest stored version if it is not the one running."""
        with self._syncing:
            latest = self.store.latest_number()
            if latest == self.applied:
                return None
            version, config = self.store.current()
            number = version.number if version else 0
            result = self.apply(config, number)
            self.applied = number
        log.info("configuration version %d applied", number)
        return result

    def run(self) -> None:
        watch = WriteWatch(Path(f"{self.store.path}-wal"))
        delay = self.interval
        try:
            while True:
                try:
                    if self.sync() is not None:
                        delay = self.interval
                except StoreError as exc:
                    log.error("configuration store: %s", exc)
                written = watch.wait(delay)
                ceiling = self.watched_interval if watch.watching else self.interval
                delay = SETTLE_INTERVAL if written else min(delay * 2, ceiling)
        finally:
            watch.close()
