"""The lane: HTTP client connections served from event-loop callbacks.

A greenlet per request pays for switches, a gevent Timeout per wait and a saved stack, which
for a small request costs more than the proxying itself. A client connection, plain or TLS
once its handshake is done, therefore lives in the event loop: a read watcher on its socket
and one lazily re-armed timer.
The common request — no body, for a real server that has an idle pooled connection (plain or
TLS) — is sent from the client's read callback, and a response that arrives whole with
its length known is relayed from the server's read callback: two callbacks, no greenlet.

Everything else is handed to a greenlet that carries on with the general code in proxy.py
from exactly where the lane stopped, and gives the connection back afterwards: a request body,
a head in pieces, no idle server connection, NTLM/Negotiate, interim or 101
responses, chunked, close-delimited or large responses, failures and retries, and a client
that cannot take the whole response at once. A TLS connection that needs to write while
reading (renegotiation) is let go.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from ssl import SSLEOFError, SSLError, SSLWantReadError, SSLWantWriteError, SSLZeroReturnError
from typing import TYPE_CHECKING, Any, Final

import gevent
from gevent.hub import get_hub
from gevent.socket import wait_write

from passerelle.engine.http.codec import (
    Body,
    EndOfMessage,
    HttpError,
    RequestHead,
    RequestReader,
)
from passerelle.engine.http.upstream import ResponseListener, ServerConnection, ServerFailed
from passerelle.engine.http.wire import is_connection_auth
from passerelle.engine.runtime import nonblocking_io
from passerelle.engine.stats.counters import ACTIVE, BYTES_IN, BYTES_OUT, REQUESTS, TOTAL, WIDTH

if TYPE_CHECKING:
    from passerelle.engine.http.codec import ResponseHead
    from passerelle.engine.http.proxy import HttpProxyConnection
    from passerelle.engine.runtime.pools import PoolRoute, ServerRuntime

log = logging.getLogger(__name__)

RECV_SIZE: Final = 65536
# Held in C statics when compiled: `read` would look the name up in the module every call.
_os_read: Final = nonblocking_io.read
_os_write: Final = nonblocking_io.write
# What a client may send while its request is being answered (pipelining) before the lane
# stops reading from it until the answer is out.
BACKLOG_LIMIT: Final = 65536

# Request readers of client connections between requests wait here for the next connection that
# sends one: a reader is ~260 bytes, and most of thousands of keep-alive connections are idle at
# any moment. Bounded, so that a burst of busy connections leaves little behind.
_spare_readers: Final[list[RequestReader]] = []
SPARE_READERS: Final = 64


def _reader_of(proxy: HttpProxyConnection) -> RequestReader:
    reader = proxy.reader
    if reader is None:
        reader = proxy.reader = _spare_readers.pop() if _spare_readers else RequestReader()
    return reader


class _Exchange:
    """The request in flight on the lane."""

    __slots__ = ("conn", "cookie_server", "head", "persist_key", "route", "set_cookie", "started")

    def __init__(
        self,
        head: RequestHead,
        route: PoolRoute,
        conn: ServerConnection,
        persist_key: str | None,
        cookie_server: ServerRuntime | None,
        set_cookie: bool,
    ) -> None:
        self.head = head
        self.route = route
        self.conn = conn
        self.persist_key = persist_key
        self.cookie_server = cookie_server
        self.set_cookie = set_cookie
        self.started = False  # some of the response arrived


def read_tls(tls: Any) -> bytes:
    """Decrypted bytes from an OpenSSL connection over a non-blocking socket.

    Raises SSLWantReadError when no whole record is in yet. The watcher sees the socket, not
    what OpenSSL already took from it: what is pending is read at once.
    """
    data = tls.read(RECV_SIZE)
    while tls.pending():
        data += tls.read(RECV_SIZE)
    return data


def retry_tls_write(tls: Any, fd: int, data: bytes, timeout: float) -> None:
    """Finish a refused TLS write, in a greenlet: OpenSSL wants the very same buffer again."""
    while True:
        try:
            tls.write(data)
            return
        except SSLWantWriteError:
            wait_write(fd, timeout=timeout)


class Lane(ResponseListener):
    """One client connection held by the event loop between and during requests."""

    __slots__ = (
        "backlog",
        "closed",
        "exchange",
        "fd",
        "last",
        "loop",
        "proxy",
        "server_last",
        "timer",
        "tls",
        "watcher",
    )

    def __init__(self, proxy: HttpProxyConnection) -> None:
        self.proxy = proxy
        # gevent keeps the kernel socket under its wrapper non-blocking: the lane reads and
        # writes its descriptor (or, for TLS, the OpenSSL connection over it) directly and
        # never waits on it. Reads and writes on the descriptor (nonblocking_io) cost less than
        # the socket methods.
        sock = proxy.sock
        self.fd = sock.fileno()
        self.tls = getattr(sock, "_sslobj", None)
        self.loop = loop = get_hub().loop
        # The socket's own read watcher, idle while the lane holds the connection (a greenlet
        # that takes over waits on it once the lane has stopped it): a second one per
        # connection would cost 120 bytes on each of thousands of idle connections.
        self.watcher = sock._read_event  # type: ignore[attr-defined]
        self.timer: Any = None  # gevent's timer watcher, untyped
        self.exchange: _Exchange | None = None
        self.backlog = 0
        self.closed = False
        self.last = self.server_last = loop.now()
        self.resume()

    # -- holding the connection ---------------------------------------------------------

    def resume(self) -> None:
        """Take the connection (back) into the event loop and serve what it already sent."""
        self.last = self.loop.now()
        self.watcher.start(self)
        self._arm(self.proxy.vs.idle_timeout)
        self._next_requests()

    def _arm(self, delay: float) -> None:
        # One timer serves both the idle and the response timeout. It is not moved on every
        # request: when it fires early it is armed again for what is left.
        if self.timer is not None:
            self.timer.close()
        self.timer = timer = self.loop.timer(max(delay, 0.0))
        timer.start(self._expired)

    def _expired(self) -> None:
        timeout = self.proxy.vs.idle_timeout
        now = self.loop.now()
        if self.exchange is not None:
            left = self.server_last + timeout - now
            if left <= 0:
                self._fail(ServerFailed("response timeout", status=504))
                return
        else:
            left = self.last + timeout - now
            if left <= 0:
                self._close()
                return
        self._arm(left)

    def _release(self) -> None:
        """Stop watching the client: a greenlet takes over, or the connection ends."""
        self.watcher.stop()
        if self.timer is not None:
            self.timer.close()
            self.timer = None

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        exchange = self.exchange
        if exchange is not None:
            self.exchange = None
            conn = exchange.conn
            conn.close()
            self.proxy.row[conn.server.slot * WIDTH + ACTIVE] -= 1
        self._release()
        self.proxy._close()  # closes the watcher with the socket

    def _hand_over(self, work: Callable[[], bool]) -> None:
        """Let a greenlet carry on with the general code; the connection comes back after."""
        self._release()
        _reader_of(self.proxy)  # the general code always has one
        gevent.spawn_raw(self._carry_on, work)

    def _carry_on(self, work: Callable[[], bool]) -> None:
        keep = False
        try:
            keep = self.proxy._carry_on(work)
        finally:  # an unexpected error must not leave the connection open and counted
            if keep:
                self.resume()
            else:
                self._close()

    def _failed(self) -> None:
        """A watcher callback raised: this connection closes, the loop carries on."""
        log.exception("%s: client %s", self.proxy.vs.name, self.proxy.client_ip)
        self._close()

    def __call__(self) -> None:
        """The client's socket is readable. The lane itself is the watcher's callback: a bound
        method would be one more object held by every idle connection."""
        try:
            self._client_input()
        except Exception:
            self._failed()

    def server_readable(self) -> None:
        """The real server of the exchange in flight sent something (ServerConnection.watch)."""
        try:
            self._server_input()
        except Exception:
            self._failed()

    # -- the client side ---------------------------------------------------------------

    def _client_input(self) -> None:
        proxy = self.proxy
        if self.tls is None:
            try:
                data = _os_read(self.fd, RECV_SIZE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
        else:
            received = self._read_tls()
            if received is None:
                return
            data = received
        if not data:
            self._close()
            return
        proxy.counts.add(proxy.service_slot * WIDTH + BYTES_IN, len(data))
        self.last = self.loop.now()
        try:
            _reader_of(proxy).feed(data)
        except HttpError as exc:
            if self.exchange is None:
                self._refuse(exc)
            else:
                self.watcher.stop()  # refused once the answer in flight is out
            return
        if self.exchange is None:
            self._next_requests()
            return
        self.backlog += len(data)
        if self.backlog > BACKLOG_LIMIT:
            self.watcher.stop()

    def _read_tls(self) -> bytes | None:
        """What the client sent, decrypted; None if no whole record is in yet, b"" at the end."""
        try:
            return read_tls(self.tls)
        except SSLWantReadError:
            return None
        except (SSLError, OSError):  # close_notify, a reset, or a renegotiation: let go
            return b""

    def _refuse(self, exc: HttpError) -> None:
        def refuse() -> bool:
            raise exc

        self._hand_over(refuse)

    def _next_requests(self) -> None:
        """Serve the requests the client has sent, as far as the lane can."""
        proxy = self.proxy
        reader = proxy.reader
        if reader is None:  # at rest since the last request
            return
        while self.exchange is None:
            event = reader.next_event()
            if event is None:
                if reader.at_rest():  # the usual case: the reader goes back to the spares
                    proxy.reader = None
                    if len(_spare_readers) < SPARE_READERS:
                        _spare_readers.append(reader)
                    return
                refusal = reader.refusal()
                if refusal is not None:  # input refused while an answer was in flight
                    self._refuse(refusal)
                    return
                if reader.in_head():
                    self._hand_over(proxy._serve_slow_head)
                return
            if type(event) is not RequestHead:
                self._refuse(HttpError(400, "unexpected data between requests"))
                return
            if proxy.service.superseded and not proxy._follow_reload():
                self._refuse(HttpError(503, "This service was removed."))
                return
            if not self._start(event):
                return

    def _start(self, head: RequestHead) -> bool:
        """Begin proxying ``head``; False when it was handed over or the connection ended."""
        proxy = self.proxy
        reader: RequestReader = proxy.reader  # type: ignore[assignment]  # set while a head is read
        # The lane sends a request itself only without a body, an upgrade or connection
        # authentication (NTLM/Negotiate pin the server connection).
        if (
            head.chunked
            or head.content_length
            or head.upgrade
            or head.expect_continue
            or is_connection_auth(head.get(b"authorization"))
            or not reader.ends_next()
        ):
            self._hand_over(partial(proxy._serve_request, head))
            return False
        row, counts = proxy.row, proxy.counts
        counts.add(proxy.service_slot * WIDTH + REQUESTS, 1)
        route = proxy.fixed_route
        if route is None:
            route = proxy._route(head)
        if route is None:
            self._hand_over(partial(proxy._no_match, head))
            return False
        if route.name is not None:
            counts.add(route.slot * WIDTH + REQUESTS, 1)
        pool = route.pool
        if pool.persistence_mode == "none":
            persist_key = cookie_server = None
        else:
            persist_key, cookie_server = proxy._persistence(route, head)
        # Asking the persistence authority and learning server cookies talk to the
        # supervisor, which may wait: only a greenlet may do that.
        if proxy.pinned or pool.persistence_mode == "server_cookie":
            self._hand_over(partial(proxy._proxy_request, head, route, persist_key, cookie_server))
            return False
        set_cookie = pool.persistence_mode == "active_cookie"
        server: ServerRuntime | None
        if cookie_server is not None and cookie_server.usable():
            server, set_cookie = cookie_server, False
        elif persist_key is not None:
            server = pool.remembered(persist_key)  # None: the authority must be asked
        else:
            server = pool.schedule(proxy.client_ip)
        conn = None
        if server is not None:
            plain = route.reencrypt is None
            key = (
                server.plain_key
                if plain
                else proxy._pool_key(route, server, proxy._server_name(route, head, server))
            )
            conn = proxy.idle.get(key, probe=False)
        if conn is None:
            first = None if server is None else (server, set_cookie)
            self._hand_over(
                partial(proxy._proxy_request, head, route, persist_key, cookie_server, first)
            )
            return False
        assert server is not None
        conn.server = server
        reader.next_event()  # the request's end: nothing of it is left to read
        proxy.consumed = True
        proxy.body_sent = proxy.responded = False
        proxy.tunnel_rest = b""
        s_base = server.slot * WIDTH
        row[s_base + ACTIVE] += 1
        counts.add(s_base + TOTAL, 1)
        counts.add(s_base + REQUESTS, 1)
        data = proxy.request_head(head)
        conn.reader.expect(head.method)
        self.exchange = exchange = _Exchange(
            head, route, conn, persist_key, cookie_server, set_cookie
        )
        # The loop's time is fixed for the iteration, and every way here set ``last`` in it.
        self.server_last = self.last
        conn.watch(self)
        server_tls = conn.tls
        try:
            # TLS writes are all or nothing, as on the client side.
            sent = _os_write(conn.fd, data) if server_tls is None else server_tls.write(data)
        except (BlockingIOError, SSLWantWriteError):
            sent = 0
        except OSError as exc:
            self._fail(ServerFailed(f"send failed: {exc}", retryable=True))
            return False
        counts.add(s_base + BYTES_IN, len(data))
        if sent < len(data):
            self._continue_exchange(partial(self._send_rest_to_server, exchange, data, sent))
            return False
        return True

    def _send_rest_to_server(self, exchange: _Exchange, data: bytes, sent: int) -> bool:
        conn = exchange.conn
        server_tls = conn.tls
        proxy = self.proxy
        try:
            if server_tls is None:
                conn.send(data[sent:])
            else:
                # A TLS write is retried with the same bytes (see retry_tls_write).
                retry_tls_write(server_tls, conn.sock.fileno(), data, proxy.vs.idle_timeout)
        except OSError as exc:
            raise ServerFailed(f"send failed: {exc}", retryable=True) from exc
        return proxy._await_response(
            exchange.head, exchange.route, conn, exchange.set_cookie, False
        )

    # -- the server side ---------------------------------------------------------------

    def _server_input(self) -> None:
        exchange = self.exchange
        assert exchange is not None
        conn = exchange.conn
        proxy = self.proxy
        server_tls = conn.tls
        try:
            data = _os_read(conn.fd, RECV_SIZE) if server_tls is None else read_tls(server_tls)
        except (BlockingIOError, SSLWantReadError):
            return  # for TLS: a record in pieces, or a handshake message such as a ticket
        except (SSLZeroReturnError, SSLEOFError):
            data = b""
        except OSError as exc:
            self._fail(ServerFailed(f"receive failed: {exc}", retryable=not exchange.started))
            return
        if not data:
            if not exchange.started:
                self._fail(ServerFailed("closed before responding", retryable=True))
            else:
                # Cut mid-head: the general code reads the end of stream again and says why.
                self._continue_exchange(
                    partial(
                        proxy._await_response,
                        exchange.head,
                        exchange.route,
                        conn,
                        exchange.set_cookie,
                        True,
                    )
                )
            return
        exchange.started = True
        self.server_last = self.loop.now()
        proxy.counts.add(conn.server.slot * WIDTH + BYTES_OUT, len(data))
        reader = conn.reader
        try:
            reader.feed(data)
        except HttpError as exc:
            self._fail(ServerFailed(exc.reason))
            return
        response = reader.next_event()
        if response is None:
            return  # the head is not complete yet
        self._relay(exchange, response)  # type: ignore[arg-type]

    def _relay(self, exchange: _Exchange, response: ResponseHead) -> None:
        proxy = self.proxy
        head, route, conn = exchange.head, exchange.route, exchange.conn
        status = response.status
        if (status < 200 or status == 101) or (response.get(b"www-authenticate") is not None):
            # Interim answers, upgrades and connection authentication: the general code.
            self._continue_exchange(
                partial(
                    proxy._continue_after_head, head, route, conn, response, exchange.set_cookie
                )
            )
            return
        if response.whole and proxy.as_received(
            head, response, route, exchange.set_cookie, head.keep_alive
        ):
            conn.reader.skip_whole()
            proxy.responded = True
            self._finish(exchange, response.whole, True, True)
            return
        framing, keep, head_bytes, close_delimited = proxy._response_start(
            head, response, route, conn, exchange.set_cookie, head.keep_alive
        )
        reusable = response.keep_alive and not close_delimited
        out = [head_bytes]
        if framing is None and not close_delimited:
            reader = conn.reader
            while (event := reader.next_event()) is not None:
                if type(event) is Body:
                    out.append(event.data)  # type: ignore[union-attr]
                elif type(event) is EndOfMessage:
                    self._finish(exchange, b"".join(out), keep, reusable)
                    return
        self._continue_exchange(
            partial(self._relay_rest, route, conn, out, framing, keep, reusable)
        )

    def _relay_rest(
        self,
        route: PoolRoute,
        conn: ServerConnection,
        out: list[bytes],
        framing: bytes | None,
        keep: bool,
        reusable: bool,
    ) -> bool:
        self.proxy._relay_body(conn, out, framing)
        return self.proxy._settle(route, conn, False, keep, reusable)

    def _finish(self, exchange: _Exchange, data: bytes, keep: bool, reusable: bool) -> None:
        """The whole response is here: free the server connection, then answer the client."""
        proxy = self.proxy
        conn = exchange.conn
        self.exchange = None
        row = proxy.row
        row[conn.server.slot * WIDTH + ACTIVE] -= 1
        conn.release()
        proxy._settle(exchange.route, conn, False, keep, reusable)
        proxy.counts.add(proxy.service_slot * WIDTH + BYTES_OUT, len(data))
        tls = self.tls
        try:
            # OpenSSL writes all or nothing: partial writes are off.
            sent = _os_write(self.fd, data) if tls is None else tls.write(data)
        except (BlockingIOError, SSLWantWriteError):
            sent = 0
        except OSError:  # SSLError included
            self._close()
            return
        self.last = self.server_last  # the loop's time, set in this iteration (_server_input)
        if sent < len(data):
            self._hand_over(partial(self._send_rest_to_client, data, sent, keep))
            return
        if not keep:
            self._close()
            return
        if self.backlog:
            self.backlog = 0
            self.watcher.start(self)
        self._next_requests()

    def _send_rest_to_client(self, data: bytes, sent: int, keep: bool) -> bool:
        proxy = self.proxy
        tls = self.tls
        if tls is None:
            proxy.send(data[sent:])
        else:
            # A TLS write is retried with the same bytes (see retry_tls_write).
            retry_tls_write(tls, proxy.sock.fileno(), data, proxy.vs.idle_timeout)
        return keep

    # -- handing an exchange over -------------------------------------------------------

    def _continue_exchange(self, step: Callable[[], bool]) -> None:
        """A greenlet finishes the exchange in flight (and retries it if it must)."""
        exchange = self.exchange
        assert exchange is not None
        self.exchange = None
        self.backlog = 0
        conn = exchange.conn
        conn.unwatch()
        proxy = self.proxy
        self._hand_over(
            lambda: proxy._proxy_request(
                exchange.head,
                exchange.route,
                exchange.persist_key,
                exchange.cookie_server,
                resume=(conn, step),
            )
        )

    def _fail(self, exc: ServerFailed) -> None:
        """The real server failed: the general code retries or answers, as for any request."""

        def fail() -> bool:
            raise exc

        self._continue_exchange(fail)
