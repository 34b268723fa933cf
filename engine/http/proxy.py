"""The L7 HTTP/1.1 full proxy: one client connection, many requests, each balanced on its own.

Every request is routed afresh (content switching, persistence, scheduling), so the requests of
one keep-alive client connection can land on different real servers, as Skype for Business
mobile clients need. Server connections come from a per-worker idle pool, except those that
carried NTLM/Negotiate: they stay pinned to their one client connection.

The parsing is the sans-IO codec; this module only moves bytes and applies decisions. Client
connections live in the lane (lane.py), which serves the common request from event-loop
callbacks and hands everything else to a greenlet running the general code here.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
import weakref
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

import gevent
from gevent import socket as gsocket

from passerelle.engine.balance.persistence import (
    find_cookie,
    header_key,
    set_cookie_value,
    set_cookie_values,
)
from passerelle.engine.http.codec import (
    Body,
    EndOfMessage,
    Event,
    HttpError,
    RequestHead,
    RequestReader,
    ResponseHead,
    Upgraded,
)
from passerelle.engine.http.lane import Lane
from passerelle.engine.http.plain_head import (
    CONNECTION,
    KEEP_ALIVE,
    connection_option,
    header_kind,
)
from passerelle.engine.http.rules import ContentSwitch, RequestFacts, normalise_host
from passerelle.engine.http.sockio import send_all
from passerelle.engine.http.upstream import (
    IdlePool,
    PoolKey,
    ServerConnection,
    ServerFailed,
    open_connection,
)
from passerelle.engine.http.wire import (
    HEAD_END,
    HOP_BY_HOP,
    LAST_CHUNK,
    DropSet,
    any_connection_auth,
    chunk,
    error_response,
    extra_connection_options,
    is_connection_auth,
    response_head_bytes,
    status_line,
)
from passerelle.engine.relay import splice as pipes
from passerelle.engine.relay.tcp import relay
from passerelle.engine.runtime.context import WorkerContext, client_ip
from passerelle.engine.runtime.pools import PoolRoute, ServerRuntime, connection_pool_key
from passerelle.engine.runtime.services import ServiceRuntime
from passerelle.engine.stats.counters import (
    ACTIVE,
    BYTES_IN,
    BYTES_OUT,
    FAILURES,
    REQUESTS,
    TOTAL,
    WIDTH,
)
from passerelle.engine.tls.contexts import server_hostname_for, server_name
from passerelle.engine.tls.handshake import ClientHandshake, accepted_socket

if TYPE_CHECKING:  # a worker reads the plain copy (runtime/snapshot.py), never pydantic
    from passerelle.engine.model.config import HeaderOptions

log = logging.getLogger(__name__)

RECV_SIZE: Final = 65536
FLUSH_SIZE: Final = 65536  # gathered response bytes beyond this go out at once
# A Content-Length body with at least this much still to come, between plain sockets, is
# spliced server -> pipe -> client: it never enters Python (nor its memory).
SPLICE_MIN: Final = 65536
CONNECT_ATTEMPTS: Final = 3
# How long to wait for a server's 100 Continue before sending the body anyway.
CONTINUE_WAIT: Final = 1.0
# RFC 9110 9.2.2: only these may be sent again after a server dropped the connection unanswered.
IDEMPOTENT: Final = frozenset((b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"))
# After refusing a request, what the client still sends is read and dropped for a moment before
# closing: closing with unread input makes the kernel send a reset, which can destroy the
# refusal before the client reads it.
LINGER_TIME: Final = 1.0
LINGER_BYTES: Final = 256 * 1024
# Client addresses whose request head ending is kept ready, per service (see HeaderPlan).
CLIENT_TAILS_KEPT: Final = 4096
NO_PINS: Final[Mapping[str, ServerConnection]] = MappingProxyType({})


class ClientGone(Exception):
    """The client closed, reset or timed out: nothing more can be sent to it."""


class ClientTimeout(ClientGone):
    """The client sent nothing for as long as the current wait allowed."""


def _names(names: list[str] | dict[str, str]) -> frozenset[bytes]:
    return frozenset(n.lower().encode("latin-1") for n in names)


def _lines(added: dict[str, str]) -> list[bytes]:
    """Added headers as serialised head lines."""
    return [f"{name}: {value}".encode("latin-1") for name, value in added.items()]


class HeaderPlan:
    """A service's header options in the form the per-request code wants them."""

    __slots__ = (
        "_client_tails",
        "request_added",
        "request_forward_drop",
        "response_adds",
        "response_end",
        "response_end_close",
        "response_end_keep_alive",
        "response_forward_drop",
        "tls",
        "xff",
        "xfp",
    )

    def __init__(self, opts: HeaderOptions, tls: bool) -> None:
        self.tls = tls
        self.xff = opts.x_forwarded_for
        self.xfp = opts.x_forwarded_proto
        # What never goes on from a received head, in one set: hop-by-hop headers, removed
        # and replaced ones (an added header replaces whatever the peer sent under that
        # name), and the X-Forwarded-* headers the proxy writes itself.
        forwarded: set[bytes] = set()
        if self.xff != "off":
            forwarded.add(b"x-forwarded-for")
        if self.xfp:
            forwarded.add(b"x-forwarded-proto")
        request_drop = _names(opts.request_remove) | _names(opts.request_add)
        self.request_forward_drop = DropSet(HOP_BY_HOP | request_drop | forwarded)
        self.response_forward_drop = DropSet(
            HOP_BY_HOP | _names(opts.response_remove) | _names(opts.response_add)
        )
        self.request_added = _lines(opts.request_add)
        # The end of a response head, serialised: added headers, Connection, the blank line.
        added = _lines(opts.response_add)
        self.response_adds = bool(added)
        self.response_end = [*added, *HEAD_END]
        self.response_end_close = [*added, b"Connection: close", *HEAD_END]
        self.response_end_keep_alive = [*added, b"Connection: keep-alive", *HEAD_END]
        self._client_tails: dict[str, bytes] = {}

    def request_tail(self, client_ip: str, xff_prior: list[bytes]) -> list[bytes]:
        """The end of a request head, serialised: X-Forwarded-*, added headers, the blank line."""
        lines = []
        if self.xff == "append":
            lines.append(b"X-Forwarded-For: " + b", ".join([*xff_prior, client_ip.encode()]))
        elif self.xff == "replace":
            lines.append(b"X-Forwarded-For: " + client_ip.encode())
        if self.xfp:
            lines.append(b"X-Forwarded-Proto: https" if self.tls else b"X-Forwarded-Proto: http")
        lines += self.request_added
        lines += HEAD_END
        return lines

    def client_tail(self, client_ip: str) -> bytes:
        """request_tail for a request that carried no X-Forwarded-For, joined: what follows
        the head's last header line and its CRLF. Kept per client."""
        tail = self._client_tails.get(client_ip)
        if tail is None:
            if len(self._client_tails) >= CLIENT_TAILS_KEPT:
                self._client_tails.clear()
            tail = b"\r\n".join(self.request_tail(client_ip, []))
            self._client_tails[client_ip] = tail
        return tail


_plans: Final[weakref.WeakKeyDictionary[ServiceRuntime, HeaderPlan]] = weakref.WeakKeyDictionary()


def _header_plan(service: ServiceRuntime) -> HeaderPlan:
    # One plan per configuration snapshot of a service, shared by all its connections.
    plan = _plans.get(service)
    if plan is None:
        tls = service.tls_server is not None
        plan = _plans[service] = HeaderPlan(service.model.headers, tls)
    return plan


class HttpProxyConnection:
    """Serves one client connection until it closes or an error ends it."""

    # Thousands of idle keep-alive connections each hold one of these: no per-instance dict.
    __slots__ = (
        "accepted_base",
        "body_sent",
        "client_ip",
        "consumed",
        "counts",
        "ctx",
        "current",
        "fixed_route",
        "idle",
        "pinned",
        "plan",
        "reader",
        "responded",
        "routes",
        "row",
        "service",
        "service_slot",
        "sni",
        "sock",
        "switch",
        "timeout",
        "tls",
        "tunnel_rest",
        "vs",
    )

    def __init__(
        self,
        ctx: WorkerContext,
        idle: IdlePool,
        service: ServiceRuntime,
        sock: socket.socket,
        peer: tuple,
        current: Callable[[], ServiceRuntime | None],
    ) -> None:
        self.ctx = ctx
        # The worker's counters, held here: read through ``ctx`` (not a compiled class) it
        # would be a lookup by name, several times a request.
        self.row = ctx.row
        self.counts = ctx.counts
        self.idle = idle
        self._use_service(service)
        self.current = current
        self.sock = sock
        self.accepted_base = service.slot * WIDTH  # where this connection is counted as active
        self.timeout: float | None = None  # what sock.settimeout() was last given
        self.client_ip = client_ip(peer)
        self.tls = service.tls_server is not None
        self.sni: str | None = None
        # Given by the lane when request bytes arrive, taken back between requests (lane.py).
        self.reader: RequestReader | None = None
        # NTLM/Negotiate: pool id -> the server connection this client authenticated on
        # (shared and empty until a pin is made: most clients never authenticate that way)
        self.pinned: Mapping[str, ServerConnection] = NO_PINS
        # Progress of the request in flight, which decides whether a failed server connection
        # can be retried on another one and what the client can still be told.
        self.consumed = False  # the client's request message was read to its end
        self.body_sent = False  # some of its body went to a server: it cannot be replayed
        self.responded = False  # a final response head went to the client
        self.tunnel_rest = b""  # client bytes that followed an upgrade request

    # -- client side -------------------------------------------------------------------

    def _recv_client(self, timeout: float) -> bytes:
        if timeout != self.timeout:
            self.sock.settimeout(timeout)
            self.timeout = timeout
        try:
            data = self.sock.recv(RECV_SIZE)
        except TimeoutError as exc:
            raise ClientTimeout("timed out") from exc
        except OSError as exc:
            raise ClientGone(str(exc)) from exc
        self.counts.add(self.service_slot * WIDTH + BYTES_IN, len(data))
        return data

    def send(self, data: bytes) -> None:
        send_all(self.sock, data)

    def _send_client(self, data: bytes) -> None:
        try:
            self.send(data)
        except OSError as exc:
            raise ClientGone(str(exc)) from exc
        self.counts.add(self.service_slot * WIDTH + BYTES_OUT, len(data))

    def _next_client_event(self, timeout: float) -> Event:
        reader: RequestReader = self.reader  # type: ignore[assignment]  # set while reading
        while True:
            event = reader.next_event()
            if event is not None:
                return event
            data = self._recv_client(timeout)
            if not data:
                raise ClientGone("client closed")
            reader.feed(data)

    def _complete_head(self, deadline: float) -> RequestHead | None:
        """The head that has begun, read in full by ``deadline``; None if the client closes."""
        reader: RequestReader = self.reader  # type: ignore[assignment]  # set while reading
        while (event := reader.next_event()) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HttpError(408, "request header timeout")
            try:
                data = self._recv_client(remaining)
            except ClientTimeout:
                raise HttpError(408, "request header timeout") from None
            if not data:
                return None
            reader.feed(data)
        if not isinstance(event, RequestHead):
            raise HttpError(400, "unexpected data between requests")
        return event

    def _refuse(self, status: int, reason: str) -> None:
        """Send a refusal, then let the client's pending input drain before the close."""
        self._send_client(error_response(status, reason))
        self._linger()

    def _linger(self) -> None:
        sock = self.sock
        with contextlib.suppress(OSError):
            if not isinstance(sock, ssl.SSLSocket):
                sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_TIME
            left = LINGER_BYTES
            while left > 0 and (remaining := deadline - time.monotonic()) > 0:
                sock.settimeout(remaining)
                self.timeout = remaining
                data = sock.recv(RECV_SIZE)
                if not data:
                    break
                left -= len(data)

    # -- the connection loop -----------------------------------------------------------

    def serve(self) -> None:
        """Hand the connection, after its TLS handshake if any, to the lane (see lane.py).

        Runs in the event loop, as the acceptor's callback: nothing here waits.
        """
        if self.tls:
            ClientHandshake(
                self.sock, self.vs.header_timeout, self._handshake_done, self._handshake_failed
            )
        else:
            Lane(self)

    def _handshake_done(self) -> None:
        self.timeout = self.sock.gettimeout()
        self.sni = server_name(self.sock)
        Lane(self)

    def _handshake_failed(self, reason: str) -> None:
        log.debug("%s: TLS handshake with %s failed: %s", self.vs.name, self.client_ip, reason)
        self._close()

    def _carry_on(self, work: Callable[[], bool]) -> bool:
        """Run the lane's hand-over in a greenlet; False when the connection must close."""
        try:
            try:
                return work()
            except HttpError as exc:
                self._refuse(exc.status, exc.reason)
        except (ClientGone, gevent.Timeout, OSError) as exc:
            log.debug("%s: client %s gone: %s", self.vs.name, self.client_ip, exc)
        return False

    def _serve_slow_head(self) -> bool:
        """A head that did not arrive in one piece: the header timeout applies to the rest."""
        head = self._complete_head(time.monotonic() + self.vs.header_timeout)
        if head is None:
            return False
        if not self._follow_reload():
            raise HttpError(503, "This service was removed.")
        return self._serve_request(head)

    def _close(self) -> None:
        for conn in self.pinned.values():
            conn.close()
        self.pinned = NO_PINS
        with contextlib.suppress(OSError):
            self.sock.close()
        self.row[self.accepted_base + ACTIVE] -= 1

    def _unpin(self, pool_id: str) -> None:
        pins = dict(self.pinned)
        del pins[pool_id]
        self.pinned = pins or NO_PINS

    def _follow_reload(self) -> bool:
        """Each request sees the latest configuration; False if the service is gone."""
        if not self.service.superseded:
            return True
        latest = self.current()
        if latest is None:
            return False
        self._use_service(latest)
        return True

    def _use_service(self, service: ServiceRuntime) -> None:
        self.service = service
        # What a request reads of its service, held here: ServiceRuntime is not a compiled
        # class, and each of its attributes read from here would be a lookup by name.
        self.service_slot = service.slot
        self.switch: ContentSwitch | None = service.switch
        self.routes: dict[str | None, PoolRoute] = service.routes
        # The route of a service without SubVS, None when each request is switched.
        self.fixed_route: PoolRoute | None = self.routes[None] if self.switch is None else None
        self.vs = service.model
        self.plan = _header_plan(service)

    def _serve_request(self, head: RequestHead) -> bool:
        """Proxy one request; False when the client connection must close afterwards."""
        counts = self.counts
        counts.add(self.service_slot * WIDTH + REQUESTS, 1)
        route = self._route(head)
        if route is None:
            return self._no_match(head)
        if route.name is not None:
            counts.add(route.slot * WIDTH + REQUESTS, 1)
        persist_key, cookie_server = self._persistence(route, head)
        return self._proxy_request(head, route, persist_key, cookie_server)

    def _no_match(self, head: RequestHead) -> bool:
        nm = self.vs.no_match
        self._discard_body()
        self._send_client(error_response(nm.status, nm.body, close=not head.keep_alive))
        return head.keep_alive

    def _proxy_request(
        self,
        head: RequestHead,
        route: PoolRoute,
        persist_key: str | None,
        cookie_server: ServerRuntime | None,
        first: tuple[ServerRuntime, bool] | None = None,
        resume: tuple[ServerConnection, Callable[[], bool]] | None = None,
    ) -> bool:
        """Proxy a routed request (see _forward); False when the client connection must close."""
        try:
            keep = self._forward(head, route, persist_key, cookie_server, first, resume)
            if not self.consumed:
                self._linger()  # the client may still be sending the body nobody read
            return keep
        except HttpError as exc:
            # The client sent something hostile mid-body: refuse and close.
            if not self.responded:
                self._refuse(exc.status, exc.reason)
            return False

    def _route(self, head: RequestHead) -> PoolRoute | None:
        switch = self.switch
        if switch is None:
            return self.fixed_route
        facts = RequestFacts(
            host=normalise_host(head.get(b"host")),
            path=head.path.decode("latin-1"),
            sni=self.sni,
            # A bound method, not a closure or a partial: the cheapest callable to make.
            header=head.text,
        )
        name = switch.choose(facts)
        return None if name is None else self.routes.get(name)

    def _persistence(
        self, route: PoolRoute, head: RequestHead
    ) -> tuple[str | None, ServerRuntime | None]:
        """(key for the persistence authority, server named by an active cookie)."""
        pool = route.pool
        p = pool.persistence
        mode = p.mode
        if mode == "none":
            return None, None
        if mode == "source_ip":
            return pool.source_persist_key(self.client_ip), None
        if mode == "header":
            value = head.get(p.header_name.lower().encode("latin-1"))  # type: ignore[union-attr]
            return ("hdr:" + header_key(value) if value else None), None
        token = find_cookie(head.get_all(b"cookie"), p.cookie_name)
        if mode == "server_cookie":
            return ("cookie:" + token if token else None), None
        # active_cookie: the cookie names the server itself; nothing to look up elsewhere
        server = pool.by_token.get(token) if token else None
        return None, server

    def _discard_body(self) -> None:
        event = self._next_client_event(self.vs.idle_timeout)
        while not isinstance(event, (EndOfMessage, Upgraded)):
            event = self._next_client_event(self.vs.idle_timeout)

    # -- talking to the real server -----------------------------------------------------

    def _server_connection(
        self,
        route: PoolRoute,
        head: RequestHead,
        persist_key: str | None,
        cookie_server: ServerRuntime | None,
        exclude: list[ServerRuntime],
        first: tuple[ServerRuntime, bool] | None = None,
    ) -> tuple[ServerConnection | None, bool]:
        """A connection to the chosen server, and whether an active cookie must be (re)set.

        ``first`` is a server already chosen for this request, with its set-cookie decision.
        """
        pool = route.pool
        pinned = self.pinned.get(pool.id)
        if pinned is not None:
            if pinned.server.state != "disabled" and pinned.server.healthy:
                return pinned, False
            pinned.close()
            self._unpin(pool.id)
        set_cookie = pool.persistence_mode == "active_cookie"
        replayable = head.method in IDEMPOTENT and not (head.chunked or head.content_length)
        for _ in range(CONNECT_ATTEMPTS):
            server: ServerRuntime | None
            fresh = False
            if first is not None:
                server, set_cookie = first
                first = None
                # The lane found no idle connection to this server. One may be back by now, but
                # taking it would leave the pool one short of the load it serves, and the lane
                # would hand a request over again each time the load peaks: open one instead.
                fresh = True
            elif (
                cookie_server is not None
                and cookie_server.usable()
                and cookie_server not in exclude
            ):
                server = cookie_server
                set_cookie = False
            else:
                server = pool.choose(self.client_ip, persist_key, exclude)
            if server is None:
                return None, False
            sni = self._server_name(route, head, server)
            key = self._pool_key(route, server, sni)
            # A bodiless idempotent request is sent again if a pooled connection turns out
            # closed: only the others need the pool to probe the connection first.
            conn = None if fresh else self.idle.get(key, probe=not replayable)
            if conn is not None:
                conn.unwatch()  # the lane's watcher must not see this exchange's response
                conn.server = server
                return conn, set_cookie
            try:
                conn = open_connection(server, self.vs.connect_timeout, route.tls_client, sni, key)
                return conn, set_cookie
            except (OSError, ValueError) as exc:
                log.info("%s: cannot reach %s: %s", self.vs.name, server.key, exc)
                self.row[server.slot * WIDTH + FAILURES] += 1
                exclude.append(server)
        return None, False

    def _server_name(
        self, route: PoolRoute, head: RequestHead, server: ServerRuntime
    ) -> str | None:
        """The server name sent to ``server`` in TLS (None: plain HTTP, or no name to send)."""
        reencrypt = route.reencrypt
        if reencrypt is None:
            return None
        # With verification on and no name to send, the certificate is checked against the
        # server's address (its IP SANs).
        host = normalise_host(head.get(b"host")) or None
        return server_hostname_for(reencrypt, host, server.address)

    def _pool_key(self, route: PoolRoute, server: ServerRuntime, sni: str | None) -> PoolKey:
        """Which pooled connections may carry this request to ``server``: address, port, the
        server name sent in TLS, and whether it is TLS."""
        if route.reencrypt is None:
            return server.plain_key
        return connection_pool_key(server.address, server.port, sni, route.tls_client is not None)

    def request_head(self, head: RequestHead) -> bytes:
        """The head sent to the real server: the client's, less hop-by-hop and replaced
        headers, plus what the service adds."""
        plan = self.plan
        drop = plan.request_forward_drop
        whole = head.whole
        if (
            whole
            and not head.connection
            and drop.keeps_all(head.lines, head.colons, len(head.colons))
        ):
            # Nothing of it is left out: it goes on as it came, up to its blank line.
            return whole[:-2] + plan.client_tail(self.client_ip)
        if head.connection:
            extra = extra_connection_options(head.connection)
            if extra:
                drop = drop | extra
        received = head.lines
        if received:
            count = len(head.colons)
            lines = drop.kept_lines(received, head.colons)
        else:
            count = len(head.headers)
            lines = drop.head_lines(head.headers)
        if received and head.version == b"1.1":
            lines.insert(0, received[0])  # plain: ``METHOD target HTTP/1.1`` as it goes on
        else:
            lines.insert(0, b"%s %s HTTP/1.1" % (head.method, head.target))
        append_xff = plan.xff == "append"
        # Something dropped may be an X-Forwarded-For that the new one extends.
        if head.chunked or head.upgrade or (append_xff and len(lines) <= count):
            if head.chunked:
                lines.append(b"Transfer-Encoding: chunked")
            if head.upgrade:
                lines.append(b"Connection: Upgrade")
                lines.append(b"Upgrade: " + (head.get(b"upgrade") or b""))
            xff_prior = head.get_all(b"x-forwarded-for") if append_xff else []
            lines += plan.request_tail(self.client_ip, xff_prior)
        else:
            lines.append(plan.client_tail(self.client_ip))
        return b"\r\n".join(lines)

    def _forward(
        self,
        head: RequestHead,
        route: PoolRoute,
        persist_key: str | None,
        cookie_server: ServerRuntime | None,
        first: tuple[ServerRuntime, bool] | None = None,
        resume: tuple[ServerConnection, Callable[[], bool]] | None = None,
    ) -> bool:
        """Send the request to a real server and relay the answer, retrying where RFC 9110 lets.

        ``resume`` carries on an exchange the lane began: its server connection, already
        counted, and the step that finishes it as _exchange would.
        """
        auth = is_connection_auth(head.get(b"authorization"))
        request_bytes: bytes | None = None
        has_body = head.chunked or bool(head.content_length)
        if resume is None:
            self.consumed = self.body_sent = self.responded = False
            self.tunnel_rest = b""
        exclude: list[ServerRuntime] = []
        row, counts = self.row, self.counts
        while True:
            step: Callable[[], bool] | None = None
            if resume is not None:
                conn, step = resume
                resume = None
                s_base = conn.server.slot * WIDTH
            else:
                found, set_cookie = self._server_connection(
                    route, head, persist_key, cookie_server, exclude, first
                )
                first = None
                if found is None:
                    # A client waiting for 100 Continue sends no body: do not wait for one.
                    if not self.consumed and not head.expect_continue:
                        self._discard_body_quietly(head)
                    self._send_client(
                        error_response(503, "No real server is available for this service.\n")
                    )
                    return False
                conn = found
                s_base = conn.server.slot * WIDTH
                row[s_base + ACTIVE] += 1
                counts.add(s_base + TOTAL, 1)
                counts.add(s_base + REQUESTS, 1)
            server = conn.server
            try:
                if step is not None:
                    return step()
                if request_bytes is None:
                    request_bytes = self.request_head(head)
                return self._exchange(head, route, conn, request_bytes, has_body, set_cookie, auth)
            except ServerFailed as exc:
                self._drop(route, conn)
                if (
                    exc.retryable
                    and conn.reused
                    and not self.body_sent
                    and not self.responded
                    and head.method in IDEMPOTENT
                ):
                    # A pooled connection the server closed while it sat idle, not a bad
                    # server: try again on a fresh connection, counted as the same request.
                    counts.add(s_base + TOTAL, -1)
                    counts.add(s_base + REQUESTS, -1)
                    exclude = []
                else:
                    row[s_base + FAILURES] += 1
                    log.info("%s: %s failed: %s", self.vs.name, server.key, exc)
                    if not self.responded:
                        self._send_client(error_response(exc.status, "The real server failed.\n"))
                    return False
            except BaseException:
                # The client went away or misbehaved mid-request: the server connection is
                # in an unknown state.
                self._drop(route, conn)
                raise
            finally:
                row[s_base + ACTIVE] -= 1

    def _drop(self, route: PoolRoute, conn: ServerConnection) -> None:
        conn.close()
        if self.pinned.get(route.pool.id) is conn:
            self._unpin(route.pool.id)

    def _discard_body_quietly(self, head: RequestHead) -> None:
        if head.chunked or head.content_length:
            with contextlib.suppress(ClientGone, HttpError):
                self._discard_body()

    def _send_server(self, conn: ServerConnection, data: bytes, *, first: bool = False) -> None:
        try:
            conn.send(data)
        except OSError as exc:
            raise ServerFailed(f"send failed: {exc}", retryable=first) from exc
        self.counts.add(conn.server.slot * WIDTH + BYTES_IN, len(data))

    def _next_server_event(self, conn: ServerConnection, timeout: float, started: bool) -> Event:
        reader = conn.reader
        while True:
            event = reader.next_event()
            if event is not None:
                return event
            try:
                data = conn.recv(RECV_SIZE, timeout)
            except TimeoutError:
                raise
            except OSError as exc:
                raise ServerFailed(f"receive failed: {exc}", retryable=not started) from exc
            if not data:
                if not started:
                    raise ServerFailed("closed before responding", retryable=True)
                try:
                    reader.feed_eof()
                except HttpError as exc:
                    raise ServerFailed(exc.reason) from exc
                continue
            started = True
            self.counts.add(conn.server.slot * WIDTH + BYTES_OUT, len(data))
            try:
                reader.feed(data)
            except HttpError as exc:
                raise ServerFailed(exc.reason) from exc

    def _stream_request_body(self, head: RequestHead, conn: ServerConnection) -> None:
        """Copy the rest of the request to the server (once: a retry finds it consumed)."""
        if self.consumed:
            return
        idle = self.vs.idle_timeout
        chunked = head.chunked
        while True:
            event = self._next_client_event(idle)
            if isinstance(event, Body):
                if event.data:
                    self.body_sent = True
                    self._send_server(conn, chunk(event.data) if chunked else event.data)
            elif isinstance(event, EndOfMessage):
                if chunked:
                    self._send_server(conn, LAST_CHUNK)
                if not head.upgrade:
                    break
            elif isinstance(event, Upgraded):
                self.tunnel_rest = event.rest
                break
        self.consumed = True

    def _exchange(
        self,
        head: RequestHead,
        route: PoolRoute,
        conn: ServerConnection,
        request_bytes: bytes,
        has_body: bool,
        set_cookie: bool,
        auth: bool,
    ) -> bool:
        """Send one request and relay its response; False when the client connection must close."""
        idle = self.vs.idle_timeout
        conn.reader.expect(head.method)
        self._send_server(conn, request_bytes, first=True)
        waiting_for_continue = head.expect_continue and has_body and not self.consumed
        if not waiting_for_continue:
            # Also consumes the end of a bodyless request, so the next one can be read.
            self._stream_request_body(head, conn)
        wait = CONTINUE_WAIT if waiting_for_continue else idle
        started = False
        while True:
            try:
                event = self._next_server_event(conn, wait, started)
            except TimeoutError as exc:
                if waiting_for_continue:
                    # No 100 Continue: send the body anyway, as RFC 9110 lets clients do.
                    self._stream_request_body(head, conn)
                    waiting_for_continue, wait = False, idle
                    continue
                raise ServerFailed("response timeout", status=504) from exc
            started = True
            assert isinstance(event, ResponseHead)
            if 100 <= event.status < 200 and event.status != 101:
                self._relay_interim(event, conn, head)
                if event.status == 100 and waiting_for_continue:
                    self._stream_request_body(head, conn)
                    waiting_for_continue, wait = False, idle
                continue
            break
        return self._respond(head, route, conn, event, set_cookie, auth)

    def _await_response(
        self,
        head: RequestHead,
        route: PoolRoute,
        conn: ServerConnection,
        set_cookie: bool,
        started: bool,
    ) -> bool:
        """Carry on a bodiless exchange whose request the lane sent: read and relay the answer."""
        return self._continue_after_head(
            head, route, conn, self._response_event(conn, started), set_cookie
        )

    def _continue_after_head(
        self,
        head: RequestHead,
        route: PoolRoute,
        conn: ServerConnection,
        response: ResponseHead,
        set_cookie: bool,
    ) -> bool:
        """Carry on a bodiless exchange from its first response head, interim ones included."""
        while 100 <= response.status < 200 and response.status != 101:
            self._relay_interim(response, conn, head)
            response = self._response_event(conn, True)
        return self._respond(head, route, conn, response, set_cookie, False)

    def _response_event(self, conn: ServerConnection, started: bool) -> ResponseHead:
        try:
            event = self._next_server_event(conn, self.vs.idle_timeout, started)
        except TimeoutError as exc:
            raise ServerFailed("response timeout", status=504) from exc
        assert isinstance(event, ResponseHead)
        return event

    def _respond(
        self,
        head: RequestHead,
        route: PoolRoute,
        conn: ServerConnection,
        response: ResponseHead,
        set_cookie: bool,
        auth: bool,
    ) -> bool:
        """Relay a final response; False when the client connection must close."""
        if response.status == 101:
            if not head.upgrade:
                raise ServerFailed("101 Switching Protocols to a request without Upgrade")
            return self._tunnel(response, conn)
        # A refused body may still be on its way (the server answered before asking for it),
        # and a refused upgrade left the request reader in tunnel mode: either way this client
        # connection cannot carry another request. The server connection, which may expect the
        # refused body, goes too.
        complete = self.consumed and not head.upgrade
        pool_id = route.pool.id
        held = self.pinned.get(pool_id) is conn
        if not held and (auth or any_connection_auth(response.get_all(b"www-authenticate"))):
            # NTLM/Negotiate authenticate the connection: from now on it serves only this
            # client, for as long as both connections live.
            self.pinned = {**self.pinned, pool_id: conn}
            held = True
        keep, reusable = self._relay_response(
            head, response, route, conn, set_cookie, head.keep_alive and complete
        )
        return self._settle(route, conn, held, keep, reusable)

    def _settle(
        self, route: PoolRoute, conn: ServerConnection, held: bool, keep: bool, reusable: bool
    ) -> bool:
        """After a response: the server connection goes back to the pool, stays pinned or closes."""
        reusable = reusable and self.consumed
        if held:
            if not (keep and reusable):
                self._drop(route, conn)
        elif reusable:
            self.idle.put(conn)
        else:
            conn.close()
        return keep

    def _relay_interim(
        self, event: ResponseHead, conn: ServerConnection, head: RequestHead
    ) -> None:
        # 1xx responses have no body; the codec follows the head with EndOfMessage.
        if head.version != b"1.0":  # HTTP/1.0 clients do not expect interim responses
            self._send_client(response_head_bytes(event.status, event.reason, event.headers))
        end = self._next_server_event(conn, self.vs.idle_timeout, True)
        assert isinstance(end, EndOfMessage)

    def as_received(
        self,
        head: RequestHead,
        response: ResponseHead,
        route: PoolRoute,
        set_cookie: bool,
        keep: bool,
    ) -> bool:
        """Whether the response's bytes (``response.whole``) can go to the client as they came.

        So they can when the head built for the client would say the same: a plain HTTP/1.1
        head with no header left out, to an HTTP/1.1 client kept alive (``keep``), nothing
        added or set, and no server cookie to learn from it. A last
        ``Connection: keep-alive`` line may stay: it says what the proxy would say.
        """
        received = response.lines
        if (
            not received
            or not response.whole
            or set_cookie
            or route.pool.persistence_mode == "server_cookie"
            or not keep
            or head.version != b"1.1"
            or response.version != b"1.1"
            or self.plan.response_adds
        ):
            return False
        colons = response.colons
        count = len(colons)
        if response.connection:
            if (
                len(response.connection) != 1
                or connection_option(response.connection[0]) != KEEP_ALIVE
                or header_kind(received[count], colons[count - 1]) != CONNECTION
            ):
                return False
            count -= 1
        return self.plan.response_forward_drop.keeps_all(received, colons, count)

    def _response_head(
        self,
        response: ResponseHead,
        route: PoolRoute,
        server: ServerRuntime,
        set_cookie: bool,
        framing: bytes | None,
        keep: bool,
        head: RequestHead,
    ) -> bytes:
        """The head sent to the client: the server's, less hop-by-hop and replaced headers,
        plus the framing, persistence cookie, added headers and Connection the proxy chose."""
        plan = self.plan
        drop = plan.response_forward_drop
        if response.connection:
            extra = extra_connection_options(response.connection)
            if extra:
                drop = drop | extra
        received = response.lines
        lines = (
            drop.kept_lines(received, response.colons)
            if received
            else drop.head_lines(response.headers)
        )
        if received and response.version == b"1.1":
            lines.insert(0, received[0])  # plain: ``HTTP/1.1 status reason`` as it goes on
        else:
            lines.insert(0, status_line(response.status, response.reason))
        if framing is not None:
            lines.append(b"Transfer-Encoding: " + framing)
        p = route.pool.persistence
        if set_cookie:
            cookie = set_cookie_value(p.cookie_name, server.token, p.cookie_style, self.tls)
            lines.append(b"Set-Cookie: " + cookie)
        elif p.mode == "server_cookie":
            for value in set_cookie_values(response.headers, p.cookie_name):
                route.pool.authority.learn(route.pool.id, "cookie:" + value, server.key, p.timeout)
        if not keep:
            lines += plan.response_end_close
        elif head.version == b"1.0":
            lines += plan.response_end_keep_alive
        else:
            lines += plan.response_end
        return b"\r\n".join(lines)

    def _relay_response(
        self,
        head: RequestHead,
        response: ResponseHead,
        route: PoolRoute,
        conn: ServerConnection,
        set_cookie: bool,
        client_keep: bool,
    ) -> tuple[bool, bool]:
        """Relay the response; (client connection may continue, server connection reusable)."""
        if response.whole and self.as_received(head, response, route, set_cookie, client_keep):
            conn.reader.skip_whole()
            self.responded = True
            self._send_client(response.whole)
            return True, True
        framing, keep, head_bytes, close_delimited = self._response_start(
            head, response, route, conn, set_cookie, client_keep
        )
        self._relay_body(conn, [head_bytes], framing)
        return keep, response.keep_alive and not close_delimited

    def _response_start(
        self,
        head: RequestHead,
        response: ResponseHead,
        route: PoolRoute,
        conn: ServerConnection,
        set_cookie: bool,
        client_keep: bool,
    ) -> tuple[bytes | None, bool, bytes, bool]:
        """(client-side framing, client connection may continue, head bytes, close-delimited)."""
        no_body = head.method == b"HEAD" or response.status in (204, 304)
        close_delimited = not no_body and not response.chunked and response.content_length is None
        framing: bytes | None = None
        keep = client_keep
        if not no_body and (response.chunked or close_delimited):
            if head.version == b"1.1":
                # Chunked on the client side whatever the server did: a close-delimited body
                # then no longer ends the client connection.
                framing = b"chunked"
            else:
                keep = False  # HTTP/1.0 knows no chunks: the body ends with the connection
        head_bytes = self._response_head(
            response, route, conn.server, set_cookie, framing, keep, head
        )
        self.responded = True
        return framing, keep, head_bytes, close_delimited

    def _relay_body(self, conn: ServerConnection, out: list[bytes], framing: bytes | None) -> None:
        """Relay the response body after ``out``, the part of the response already gathered."""
        # Writes are gathered until the server has nothing more queued: a small response then
        # leaves in one send (one syscall, one segment) instead of head and body apart.
        pending = sum(map(len, out))
        idle = self.vs.idle_timeout
        reader = conn.reader
        while True:
            event = reader.next_event()
            if event is None:
                if out:
                    self._send_client(b"".join(out))
                    out, pending = [], 0
                if framing is None and self._splices(conn) and reader.body_left() >= SPLICE_MIN:
                    self._splice_body(conn, reader.take_body_outside())
                    return
                try:
                    event = self._next_server_event(conn, idle, True)
                except TimeoutError as exc:
                    raise ServerFailed("response body timeout") from exc
            if isinstance(event, Body):
                data = chunk(event.data) if framing else event.data
                out.append(data)
                pending += len(data)
                if pending >= FLUSH_SIZE:
                    self._send_client(b"".join(out))
                    out, pending = [], 0
            elif isinstance(event, EndOfMessage):
                if framing:
                    out.append(LAST_CHUNK)
                break
        if out:
            self._send_client(b"".join(out))

    def _splices(self, conn: ServerConnection) -> bool:
        """Whether bytes can go from this server connection to the client in the kernel."""
        return pipes.AVAILABLE and not self.tls and conn.tls is None

    def _splice_body(self, conn: ServerConnection, count: int) -> None:
        """Move the last ``count`` bytes of a response body from the server to the client."""
        idle = self.vs.idle_timeout
        counts = self.counts
        server_out = conn.server.slot * WIDTH + BYTES_OUT
        client_out = self.service_slot * WIDTH + BYTES_OUT
        src, dst = conn.sock.fileno(), self.sock.fileno()
        pipe = pipes.acquire()
        empty = False
        try:
            while count:
                try:
                    moved = pipes.fill(pipe, src, count, idle)
                except TimeoutError as exc:
                    raise ServerFailed("response body timeout") from exc
                except OSError as exc:
                    raise ServerFailed(f"receive failed: {exc}") from exc
                if not moved:
                    raise ServerFailed("real server closed the connection mid-response")
                counts.add(server_out, moved)
                try:
                    pipes.drain(pipe, dst, moved, idle)
                except OSError as exc:  # a timeout included: the client stopped reading
                    raise ClientGone(str(exc)) from exc
                counts.add(client_out, moved)
                count -= moved
            empty = True
        finally:
            pipes.release(pipe, empty)

    def _tunnel(self, response: ResponseHead, conn: ServerConnection) -> bool:
        """101 Switching Protocols: from here on bytes flow both ways untouched."""
        self.responded = True
        self._send_client(response_head_bytes(response.status, response.reason, response.headers))
        # The codec ends the 101 message, then hands over the bytes that followed it.
        server_rest = b""
        while (event := conn.reader.next_event()) is not None:
            if isinstance(event, Upgraded):
                server_rest = event.rest
                break
        if server_rest:
            self._send_client(server_rest)
        if self.tunnel_rest:
            self._send_server(conn, self.tunnel_rest)
        self.sock.settimeout(None)
        conn.sock.settimeout(None)
        relay(self.sock, conn.sock, self.vs.idle_timeout)
        return False


def handle_http(
    ctx: WorkerContext,
    idle: IdlePool,
    service: ServiceRuntime,
    fd: int,
    family: int,
    peer: tuple,
    current: Callable[[], ServiceRuntime | None],
) -> None:
    """Serve one client connection, just accepted on descriptor ``fd``; ``current`` returns the
    listener's service as now configured. Runs in the event loop."""
    vs = service.model
    row = ctx.row
    base = service.slot * WIDTH
    if vs.max_connections and ctx.table.value(service.slot, ACTIVE) >= vs.max_connections:
        # One attempt, never a wait: a new connection's send buffer is empty.
        with (
            gsocket.socket(family, socket.SOCK_STREAM, fileno=fd) as sock,
            contextlib.suppress(OSError),
        ):
            sock._sock.send(error_response(503, "Too many connections to this service.\n"))  # type: ignore[attr-defined]
        return
    sock = accepted_socket(fd, family, service.tls_server)
    row[base + ACTIVE] += 1
    ctx.counts.add(base + TOTAL, 1)
    try:
        connection = HttpProxyConnection(ctx, idle, service, sock, peer, current)
    except BaseException:
        row[base + ACTIVE] -= 1
        sock.close()
        raise
    connection.serve()  # the connection takes its ACTIVE count down when it closes
