"""A client's TLS connection from accept to the end of its handshake, in event-loop callbacks.

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

from gevent import socket as gsocket
from gevent import ssl as gssl
from gevent.hub import get_hub

from passerelle.engine.tls.contexts import RecordedNames

log = logging.getLogger(__name__)

_READ = 1
_WRITE = 2


class AcceptedTls(RecordedNames, gssl.SSLSocket):
    """gevent's SSLSocket for a connection just accepted, server side, handshake not started.

    Built straight on the accepted descriptor: gevent's constructor first checks what any
    socket handed to it may be (its type, whether it is connected, its timeout), through a
    second socket object and several system calls, ~10% of a full handshake's CPU. The state
    set here is what that constructor sets for a connected server-side socket; the TLS tests
    go through it on every handshake.
    """

    def __init__(self, fd: int, family: int, context: gssl.SSLContext) -> None:
        gsocket.socket.__init__(self, family, gsocket.SOCK_STREAM, 0, fd)
        self._context = context
        self._session = None
        self.server_side = True
        self.server_hostname = None
        self.do_handshake_on_connect = False
        self.suppress_ragged_eofs = True
        self._closed = False
        self._connected = True
        self._sslobj = None
        try:
            # as gevent does: OpenSSL's connection over the raw socket, which SNI callbacks get
            self._sslobj = context._wrap_socket(
                self._sock, True, None, owner=self._sock, session=None
            )
        except BaseException:
            self.close()
            raise


def accepted_socket(fd: int, family: int, tls_server: gssl.SSLContext | None) -> gsocket.socket:
    """The socket object for a connection just accepted on ``fd``: plain, or, for a service
    that offloads TLS, an ``AcceptedTls`` whose handshake is still to run."""
    if tls_server is None:
        return gsocket.socket(family, gsocket.SOCK_STREAM, 0, fd)
    return AcceptedTls(fd, family, tls_server)


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
