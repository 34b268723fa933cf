"""A client's TLS handshake driven from event-loop callbacks.

Run in a greenlet, a handshake costs a spawn, a gevent Timeout and a switch per wait, which
next to OpenSSL's own work is a large share of a new connection. Here OpenSSL is called
directly on the non-blocking socket under gevent's SSLSocket, a watcher waits for the bytes it
asks for, and one timer bounds the whole handshake.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from ssl import SSLError, SSLWantReadError, SSLWantWriteError
from typing import Any

from gevent.hub import get_hub

log = logging.getLogger(__name__)

_READ = 1
_WRITE = 2


class ClientHandshake:
    """Completes the server side of the handshake on ``sock`` (a gevent SSLSocket made with
    ``do_handshake_on_connect=False``), then calls ``done()``; on a failure or after
    ``timeout`` seconds it calls ``failed(reason)`` instead. Exactly one of them is called."""

    __slots__ = ("done", "failed", "sock", "timer", "tls", "wants", "watcher")

    def __init__(
        self,
        sock: Any,
        timeout: float,
        done: Callable[[], None],
        failed: Callable[[str], None],
    ) -> None:
        self.sock = sock
        self.tls = sock._sslobj
        self.done = done
        self.failed = failed
        self.watcher: Any = None
        self.wants = 0
        self.timer: Any = None
        self._step()
        if self.tls is not None:  # still going: the whole handshake gets ``timeout`` seconds
            self.timer = get_hub().loop.timer(timeout)
            self.timer.start(self._timed_out)

    def _step(self) -> None:
        try:
            self.tls.do_handshake()
        except SSLWantReadError:
            self._wait(_READ)
        except SSLWantWriteError:
            self._wait(_WRITE)
        except (SSLError, OSError) as exc:
            self._end()
            self.failed(str(exc))
        except Exception as exc:  # never let a surprise escape into the event loop
            log.exception("TLS handshake")
            self._end()
            self.failed(str(exc))
        else:
            self._end()
            self.done()

    def _wait(self, events: int) -> None:
        if events != self.wants:
            if self.watcher is not None:
                self.watcher.stop()
                self.watcher.close()
            self.watcher = get_hub().loop.io(self.sock.fileno(), events)
            self.wants = events
            self.watcher.start(self._step)

    def _timed_out(self) -> None:
        self._end()
        self.failed("timed out")

    def _end(self) -> None:
        self.tls = None
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher.close()
            self.watcher = None
        if self.timer is not None:
            self.timer.stop()
            self.timer.close()
            self.timer = None
