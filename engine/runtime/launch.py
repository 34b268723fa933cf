"""Starting worker processes by forking the supervisor, so that they share its memory.

A worker started as a fresh interpreter loads gevent, pydantic, the configuration model and the
TLS stack all over again: some 45 MB of its own. A forked worker shares those pages with the
supervisor copy-on-write and only pays for what it changes.

Forking a gevent program is only safe before its event loop has run: afterwards greenlets and
watchers of the supervisor (listeners, health checks, channels) would live on in the child.
``fork_safe`` says when that is the case; otherwise the supervisor starts an interpreter.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Iterable

import gevent
import gevent.os
import greenlet
from gevent.event import AsyncResult
from gevent.monkey import get_original

log = logging.getLogger(__name__)


class ForkedWorker:
    """The part of ``subprocess.Popen`` the supervisor uses, for a forked child."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._exit: AsyncResult = AsyncResult()

    def exited(self, status: int) -> None:
        self.returncode = os.waitstatus_to_exitcode(status)
        self._exit.set(self.returncode)

    def wait(self, timeout: float | None = None) -> int:
        try:
            return self._exit.get(timeout=timeout)
        except gevent.Timeout:
            raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0.0) from None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


def fork_safe() -> bool:
    """True while a fork would copy nothing but imported code and plain objects: the event loop
    has never run, this is the main greenlet, and there is no other thread."""
    hub = gevent.get_hub()
    # A greenlet that has started and not finished is true; the hub before its first run is not.
    ran = bool(hub) or hub.dead
    return (
        not ran
        and greenlet.getcurrent().parent is None
        and os.fork is gevent.os.fork
        and len(os.listdir("/proc/self/task")) == 1
    )


def prepare_to_share() -> None:
    """Make the supervisor's memory as shareable as it gets before the first fork."""
    gc.collect()
    # Objects alive now move out of the collector's reach: a collection in a child would
    # otherwise write to every object header and copy the pages that hold them. (A cycle among
    # them that the supervisor drops later is never collected: start-up objects, a one-off.)
    gc.freeze()


def fork_worker(run: Callable[[], None], keep: Iterable[int]) -> ForkedWorker:
    """Fork; the child closes every file descriptor but ``keep`` (and stdio), gets an event
    loop of its own and calls ``run``, then exits. Never returns in the child."""
    child: list[ForkedWorker] = []
    pid = gevent.os.fork_and_watch(lambda watcher: child[0].exited(watcher.rstatus))
    if pid:
        child.append(ForkedWorker(pid))
        return child[0]
    status = 1
    try:
        _become_worker(set(keep))
        run()
        status = 0
    except BaseException:
        log.exception("worker failed")
    finally:
        os._exit(status)


def _become_worker(keep: set[int]) -> None:
    # The supervisor's loop carries its signal and child watchers: the worker starts afresh.
    gevent.get_hub().destroy(destroy_loop=True)
    set_signal = get_original("signal", "signal")
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP):
        set_signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    _release_descriptors(keep | {0, 1, 2})


def _release_descriptors(keep: set[int]) -> None:
    """Let go of the supervisor's files and sockets (its ends of other workers' channels, the
    store). Each is replaced by /dev/null rather than closed: a Python object of the supervisor
    that still owns the number can never close a socket of the worker that reuses it."""
    inherited = [int(name) for name in os.listdir("/proc/self/fd")]
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    for fd in inherited:
        if fd not in keep and fd != null:
            with contextlib.suppress(OSError):  # the directory listing's own descriptor
                os.dup2(null, fd, inheritable=False)
    os.close(null)
