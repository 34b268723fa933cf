"""A worker process: listeners, connection handlers, and the config snapshots it is sent.

Forked from the supervisor at start (see ``launch``), or run as ``python -m
passerelle.engine.runtime.worker`` when a worker is restarted; both end in ``serve``. A snapshot
swaps the services that new connections and new requests see; connections already established
keep the objects they started with, so nothing established is dropped by a reload.
"""

from __future__ import annotations

from passerelle.engine.runtime.lean import skip_plugin_discovery

skip_plugin_discovery()

from gevent import monkey  # noqa: E402

monkey.patch_all()

import argparse  # noqa: E402
import base64  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import pickle  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

import gevent  # noqa: E402

from passerelle.engine.http.proxy import handle_http  # noqa: E402
from passerelle.engine.http.upstream import IdlePool  # noqa: E402
from passerelle.engine.listen.acceptor import Acceptor  # noqa: E402
from passerelle.engine.listen.sockets import tcp_listener, udp_listener  # noqa: E402
from passerelle.engine.relay.udp import UdpService  # noqa: E402
from passerelle.engine.runtime.context import WorkerContext  # noqa: E402
from passerelle.engine.runtime.control import Channel, Message  # noqa: E402
from passerelle.engine.runtime.l4 import accept_tcp  # noqa: E402
from passerelle.engine.runtime.services import (  # noqa: E402
    ListenerKey,
    ServiceRuntime,
    build_services,
)
from passerelle.engine.runtime.snapshot import PlainConfig  # noqa: E402
from passerelle.engine.runtime.udp_counters import UdpCounters  # noqa: E402
from passerelle.engine.stats.counters import CounterTable  # noqa: E402
from passerelle.engine.stats.deferred import DeferredCounts  # noqa: E402
from passerelle.engine.tls.tickets import use_keys  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

    from passerelle.engine.model.config import Config

log = logging.getLogger("passerelle.worker")


class AuthorityClient:
    """Persistence decisions are the supervisor's: it sees every worker's clients."""

    def __init__(self) -> None:
        self.channel: Channel | None = None

    def persist(self, pool: str, key: str, candidate: str, timeout: float) -> str:
        assert self.channel is not None
        try:
            reply = self.channel.request(
                {"type": "persist", "pool": pool, "key": key, "server": candidate, "ttl": timeout},
                timeout=2.0,
            )
        except (ConnectionError, gevent.Timeout):
            return candidate
        return reply.get("server") or candidate

    def persist_later(
        self, pool: str, key: str, candidate: str, timeout: float, answer: Callable[[str], None]
    ) -> None:
        # The request path runs in the hub, which must not wait: the asking has a greenlet.
        gevent.spawn(lambda: answer(self.persist(pool, key, candidate, timeout)))

    def learn(self, pool: str, key: str, server: str, timeout: float) -> None:
        if self.channel is not None:
            self.channel.send(
                {"type": "learn", "pool": pool, "key": key, "server": server, "ttl": timeout}
            )


def unpickled_config(text: str) -> Config:
    """The supervisor's validated configuration, as plain objects (see ``supervisor._pickled``
    and ``snapshot``): read like the model's, with no pydantic in this process."""
    config = pickle.loads(base64.b64decode(text))
    if not isinstance(config, PlainConfig):
        raise TypeError(f"a configuration snapshot holds {type(config).__name__}")
    return config  # type: ignore[return-value]


class Worker:
    def __init__(self, index: int, table: CounterTable) -> None:
        row = table.row(index)
        counts = DeferredCounts(row)
        self.flusher = counts.flush_before_each_wait(gevent.get_hub().loop)
        self.ctx = WorkerContext(index=index, table=table, row=row, counts=counts)
        self.idle = IdlePool()
        self.authority = AuthorityClient()
        self.services: dict[ListenerKey, ServiceRuntime] = {}
        self.tcp_servers: dict[ListenerKey, Acceptor] = {}
        self.udp_services: dict[ListenerKey, UdpService] = {}
        self.slots: dict[str, int] = {}
        self.version = 0
        # False while the licence has expired: no listener, established connections go on.
        self.accepting = True

    # -- control messages ----------------------------------------------------------------

    def handle(self, message: Message) -> Message | None:
        kind = message.get("type")
        if kind == "config":
            return self.apply(message)
        if kind == "ping":
            return {"version": self.version, "pid": os.getpid()}
        if kind == "stop":
            gevent.spawn(self.stop)
            return {}
        return {"error": f"unknown message {kind!r}"}

    def apply(self, message: Message) -> Message:
        config = unpickled_config(message["config"])
        self.slots = message["slots"]
        use_keys(bytes.fromhex(message["ticket_keys"]))
        try:
            services = build_services(
                config, self.slots.__getitem__, self.ctx.table, self.authority
            )
        except Exception as exc:  # a snapshot we cannot build leaves the running one in place
            log.exception("configuration version %s not applied", message["version"])
            return {"version": self.version, "errors": [f"not applied: {exc}"]}
        for old in self.services.values():
            old.superseded = True
        self.services = services
        self.accepting = message.get("accepting", True)
        errors = self._reconcile_listeners()
        self.version = message["version"]
        return {"version": self.version, "errors": errors}

    def _reconcile_listeners(self) -> list[str]:
        errors: list[str] = []
        wanted = set(self.services) if self.accepting else set()
        for key in [k for k in self.tcp_servers if k not in wanted]:
            # close() stops accepting but leaves established connections running
            self.tcp_servers.pop(key).close()
        for key in [k for k in self.udp_services if k not in wanted]:
            self.udp_services.pop(key).stop()
        for key in wanted:
            service = self.services[key]
            address, port, protocol = key
            try:
                if protocol == "tcp" and key not in self.tcp_servers:
                    listener = tcp_listener(address, port)
                    server = Acceptor(listener, self._tcp_handler(key, listener.family))
                    server.start()
                    self.tcp_servers[key] = server
                elif protocol == "udp":
                    self._reconcile_udp(key, service)
            except OSError as exc:
                errors.append(
                    f"{service.name}: cannot listen on {address}:{port}/{protocol}: {exc}"
                )
        return errors

    def _reconcile_udp(self, key: ListenerKey, service: ServiceRuntime) -> None:
        existing = self.udp_services.get(key)
        choose = self._udp_chooser(key)
        if existing is not None:
            existing.set_idle_timeout(service.model.idle_timeout)
            existing.set_chooser(choose)
            return
        address, port, _ = key
        counters = self._udp_counters(key)
        udp = UdpService(
            udp_listener(address, port),
            choose,
            service.model.idle_timeout,
            on_session=counters.opened,
            on_bytes=counters.moved,
            on_close=counters.closed,
        )
        udp.start()
        self.udp_services[key] = udp

    def _udp_chooser(self, key: ListenerKey):
        def choose(client_ip: str) -> tuple[str, int] | None:
            service = self.services.get(key)
            if service is None:
                return None
            pool = service.default_route.pool
            server = pool.choose(client_ip, pool.source_persist_key(client_ip))
            return None if server is None else (server.address, server.port)

        return choose

    def _udp_counters(self, key: ListenerKey) -> UdpCounters:
        return UdpCounters(self.ctx.row, lambda: self.services.get(key))

    def _tcp_handler(self, key: ListenerKey, family: int):
        def current() -> ServiceRuntime | None:  # one per listener, not one per connection
            return self.services.get(key)

        def handle(fd: int, peer: tuple) -> None:
            # Called by the acceptor in the event loop: HTTP connections live in callbacks
            # from here on; an L4 connection dials its server from a greenlet of its own.
            service = self.services.get(key)
            if service is None:
                os.close(fd)
            elif service.model.mode == "http":
                handle_http(self.ctx, self.idle, service, fd, family, peer, current)
            else:
                accept_tcp(self.ctx, service, fd, family, peer)

        return handle

    def stop(self) -> None:
        for server in self.tcp_servers.values():
            server.close()
        for udp in self.udp_services.values():
            udp.stop()
        self.idle.close_all()
        os._exit(0)


def main(argv: list[str] | None = None) -> None:
    """A worker in an interpreter of its own (a restart, or a supervisor that cannot fork)."""
    parser = argparse.ArgumentParser(description="Passerelle engine worker (started by the engine)")
    parser.add_argument("--fd", type=int, required=True, help="control socket file descriptor")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--counters", type=Path, required=True)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    serve(
        socket.socket(fileno=args.fd),
        args.index,
        CounterTable(args.counters, args.workers),
        args.log_level,
    )


def serve(sock: socket.socket, index: int, table: CounterTable, log_level: str) -> None:
    """Serve until the supervisor goes away; ``sock`` is this worker's control channel."""
    # force: a worker forked from the supervisor inherits its handlers and their format.
    logging.basicConfig(
        level=log_level,
        format=f"%(asctime)s worker-{index} %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    # The supervisor owns shutdown; Ctrl-C in a terminal reaches the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker = Worker(index, table)
    channel = Channel(sock, worker.handle)
    worker.authority.channel = channel

    def sweep() -> None:
        while True:
            gevent.sleep(5)
            worker.idle.sweep()

    gevent.spawn(sweep)
    channel.join()
    # The supervisor is gone: stop rather than serve with a frozen configuration.
    log.warning("control channel closed; worker exiting")
    worker.stop()


def _entry(args: Any = None) -> None:
    main(args)


if __name__ == "__main__":
    main(sys.argv[1:])
