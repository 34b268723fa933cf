"""Keeps the running engine on the store's latest configuration version.

New versions are committed by `passerelle config apply` (another process) and by the REST API
and HA replication (this process). Every commit writes the store's write-ahead log (SQLite WAL),
so on Linux the follower watches that file with inotify and checks the cheap latest-number query
as soon as it is written: a change reaches the workers within milliseconds, whichever process
made it. A poll of the same query stays as the safety net (no inotify, a log file replaced).
"""

from __future__ import annotations

import ctypes
import logging
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from gevent.select import select

from passerelle.engine.manage.store import ConfigStore, StoreError
from passerelle.engine.model.config import Config

log = logging.getLogger("passerelle.follow")

POLL_INTERVAL = 0.05
# Another process's commit becomes visible a moment after its log write (SQLite syncs the log
# before publishing the commit): after a write that showed nothing new, look again after this,
# then twice as long each time up to the poll interval. Writes that are not configuration
# versions (audit, API token use) thus cost a handful of cheap queries.
SETTLE_INTERVAL = 0.002

_IN_MODIFY = 0x00000002
_IN_IGNORED = 0x00008000  # the watch is gone: the file was deleted or its file system unmounted
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)


class WriteWatch:
    """Tells when one file is written (inotify); without inotify, waiting is only sleeping."""

    def __init__(self, path: Path) -> None:
        self.path = os.fsencode(path)
        self.fd = -1
        self._watch = -1
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self._add_watch = libc.inotify_add_watch
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, AttributeError):  # not Linux
            return
        self._add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self.fd = fd
        self._arm()

    @property
    def watching(self) -> bool:
        return self._watch >= 0

    def _arm(self) -> None:
        # The file may not exist yet, or again: a failed attempt is retried at the next wait.
        if self.fd >= 0 and self._watch < 0:
            self._watch = self._add_watch(self.fd, self.path, _IN_MODIFY)

    def wait(self, timeout: float) -> bool:
        """Whether the file was written before ``timeout`` seconds passed."""
        self._arm()
        if self._watch < 0:
            gevent.sleep(timeout)
            return False
        readable, _, _ = select([self.fd], [], [], timeout)
        return bool(readable) and self._drain()

    def _drain(self) -> bool:
        written = False
        while True:
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                return written
            offset = 0
            while offset < len(data):
                _, mask, _, name_length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size + name_length
                written = written or bool(mask & _IN_MODIFY)
                if mask & _IN_IGNORED:
                    self._watch = -1

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
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
        self.applied = 0

    def sync(self) -> dict[str, Any] | None:
        """Apply the latest stored version if it is not the one running."""
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
                delay = SETTLE_INTERVAL if written else min(delay * 2, self.interval)
        finally:
            watch.close()
