"""UDP virtual service over real loopback sockets: sessions, replies, expiry, drops."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import gevent
import pytest
from gevent import socket as gsocket

from passerelle.engine.relay.udp import UdpService

Address = tuple[str, int]


def _udp_socket(host: str = "127.0.0.1") -> gsocket.socket:
    sock = gsocket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    return sock


class RealServer:
    """Answers each datagram with ``<name>|<sender port>|<payload>``."""

    def __init__(self, name: str) -> None:
        self.name = name.encode()
        self.sock = _udp_socket()
        self.address: Address = self.sock.getsockname()[:2]
        self.senders: list[Address] = []
        self._greenlet = gevent.spawn(self._serve)

    def _serve(self) -> None:
        while True:
            data, sender = self.sock.recvfrom(65536)
            self.senders.append(sender)
            self.sock.sendto(b"%s|%d|%s" % (self.name, sender[1], data), sender)

    def close(self) -> None:
        self._greenlet.kill()
        self.sock.close()


class Chooser:
    def __init__(self, servers: list[Address | None]) -> None:
        self.servers = servers
        self.calls: list[str] = []

    def __call__(self, client_ip: str) -> Address | None:
        self.calls.append(client_ip)
        return self.servers[(len(self.calls) - 1) % len(self.servers)]


@pytest.fixture
def real_servers() -> Iterator[list[RealServer]]:
    servers = [RealServer("one"), RealServer("two")]
    yield servers
    for server in servers:
        server.close()


class Service:
    """A started UdpService on an ephemeral port, with its callbacks recorded."""

    def __init__(self, choose: Chooser, idle_timeout: float = 5.0, **options: int) -> None:
        self.sock = gsocket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.address: Address = self.sock.getsockname()[:2]
        self.opened: list[tuple[str, Address]] = []
        self.up = 0
        self.down = 0
        self.service = UdpService(
            self.sock,
            choose,
            idle_timeout,
            on_session=lambda client, server: self.opened.append((client, server)),
            on_bytes=self._count,
            **options,
        )
        self.service.start()

    def _count(self, up: int, down: int, server: tuple[str, int]) -> None:
        self.up += up
        self.down += down

    def close(self) -> None:
        self.service.stop()


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.close()


def _ask(client: gsocket.socket, service: Service, payload: bytes) -> tuple[bytes, Address]:
    client.sendto(payload, service.address)
    client.settimeout(2.0)
    return client.recvfrom(65536)


def _no_reply(client: gsocket.socket, wait: float = 0.3) -> bool:
    client.settimeout(wait)
    try:
        client.recvfrom(65536)
    except TimeoutError:
        return True
    return False


def _eventually(condition, timeout: float = 3.0) -> bool:
    with gevent.Timeout(timeout, False):
        while not condition():
            gevent.sleep(0.02)
        return True
    return False


def test_each_client_gets_its_own_session_and_replies(real_servers, services) -> None:
    one, two = real_servers
    choose = Chooser([one.address, two.address])
    service = Service(choose)
    services.append(service)
    alice, bob = _udp_socket(), _udp_socket()

    replies = {}
    for round_ in range(3):
        for name, client in (("alice", alice), ("bob", bob)):
            data, sender = _ask(client, service, f"{name}-{round_}".encode())
            assert sender == service.address  # replies come from the service address
            replies.setdefault(name, []).append(data)

    # Alice's session went to the first server, Bob's to the second, for every datagram.
    assert [r.split(b"|")[0] for r in replies["alice"]] == [b"one"] * 3
    assert [r.split(b"|")[0] for r in replies["bob"]] == [b"two"] * 3
    assert [r.split(b"|")[2] for r in replies["alice"]] == [b"alice-0", b"alice-1", b"alice-2"]
    # One upstream socket per session: the same source port for all of a client's datagrams.
    assert len(set(one.senders)) == 1
    assert len(set(two.senders)) == 1
    assert choose.calls == ["127.0.0.1", "127.0.0.1"]
    assert service.service.sessions == 2
    assert [server for _, server in service.opened] == [one.address, two.address]
    assert service.opened[0][0] == f"127.0.0.1:{alice.getsockname()[1]}"
    sent = sum(len(f"{n}-{r}") for n in ("alice", "bob") for r in range(3))
    assert service.up == sent
    assert service.down == sum(len(r) for rs in replies.values() for r in rs)
    alice.close()
    bob.close()


def test_idle_session_expires_and_a_new_datagram_opens_a_new_one(real_servers, services) -> None:
    one, _ = real_servers
    choose = Chooser([one.address])
    service = Service(choose, idle_timeout=0.3)
    services.append(service)
    client = _udp_socket()

    first, _ = _ask(client, service, b"ping")
    assert service.service.sessions == 1
    assert _eventually(lambda: service.service.sessions == 0)
    second, _ = _ask(client, service, b"ping")

    assert service.service.sessions == 1
    assert len(choose.calls) == 2
    assert len(service.opened) == 2
    # A new upstream socket: the real server sees a different source port.
    assert first.split(b"|")[1] != second.split(b"|")[1]
    client.close()


def test_traffic_keeps_a_session_alive(real_servers, services) -> None:
    one, _ = real_servers
    choose = Chooser([one.address])
    service = Service(choose, idle_timeout=0.3)
    services.append(service)
    client = _udp_socket()

    for _ in range(8):  # 0.8 s of traffic, well past the idle timeout
        _ask(client, service, b"tick")
        gevent.sleep(0.1)
    assert len(choose.calls) == 1
    assert service.service.sessions == 1
    client.close()


def test_no_available_server_drops_the_datagram(services) -> None:
    choose = Chooser([None])
    service = Service(choose)
    services.append(service)
    client = _udp_socket()

    client.sendto(b"hello", service.address)
    assert _no_reply(client)
    assert service.service.sessions == 0
    assert choose.calls == ["127.0.0.1"]
    assert service.service.dropped == 1
    client.close()


def test_port_unreachable_drops_the_session(services) -> None:
    closed = _udp_socket()
    nobody = closed.getsockname()[:2]
    closed.close()  # nothing listens there: the kernel answers with ICMP port unreachable
    choose = Chooser([nobody])
    service = Service(choose, idle_timeout=60.0)
    services.append(service)
    client = _udp_socket()

    client.sendto(b"hello", service.address)
    assert _eventually(lambda: len(choose.calls) == 1)
    assert _eventually(lambda: service.service.sessions == 0)
    assert _no_reply(client, 0.1)
    client.close()


def test_session_limit_drops_new_clients(real_servers, services) -> None:
    one, _ = real_servers
    choose = Chooser([one.address])
    service = Service(choose, max_sessions=1)
    services.append(service)
    alice, bob = _udp_socket(), _udp_socket()

    _ask(alice, service, b"first")
    bob.sendto(b"second", service.address)
    assert _no_reply(bob)
    _ask(alice, service, b"still served")

    assert service.service.sessions == 1
    assert len(choose.calls) == 1
    alice.close()
    bob.close()


def test_new_chooser_applies_to_new_sessions_only(real_servers, services) -> None:
    one, two = real_servers
    service = Service(Chooser([one.address]))
    services.append(service)
    alice, bob = _udp_socket(), _udp_socket()

    _ask(alice, service, b"a")
    service.service.set_chooser(Chooser([two.address]))
    alice_again, _ = _ask(alice, service, b"a")
    bob_reply, _ = _ask(bob, service, b"b")

    assert alice_again.startswith(b"one|")
    assert bob_reply.startswith(b"two|")
    alice.close()
    bob.close()


def test_shorter_idle_timeout_applies_after_reload(real_servers, services) -> None:
    one, _ = real_servers
    service = Service(Chooser([one.address]), idle_timeout=60.0)
    services.append(service)
    client = _udp_socket()

    _ask(client, service, b"x")
    service.service.set_idle_timeout(0.3)
    assert _eventually(lambda: service.service.sessions == 0)
    client.close()


def test_stop_closes_sessions_and_frees_the_port(real_servers) -> None:
    one, _ = real_servers
    service = Service(Chooser([one.address]))
    client = _udp_socket()
    _ask(client, service, b"x")
    upstream_port = one.senders[-1][1]

    service.service.stop()
    assert service.service.sessions == 0
    assert service.sock.fileno() == -1
    # Both the service port and the session's upstream port are free again.
    for port in (service.address[1], upstream_port):
        again = gsocket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        again.bind(("127.0.0.1", port))
        again.close()
    client.close()


def test_a_failing_chooser_drops_one_datagram_not_the_service(real_servers, services) -> None:
    one, _ = real_servers
    calls: list[str] = []

    def flaky(client_ip: str) -> Address:
        calls.append(client_ip)
        if len(calls) == 1:
            raise RuntimeError("scheduler bug")
        return one.address

    service = Service(Chooser([one.address]))
    service.service.set_chooser(flaky)
    services.append(service)
    client = _udp_socket()

    client.sendto(b"lost", service.address)
    assert _no_reply(client)
    reply, _ = _ask(client, service, b"served")
    assert reply.endswith(b"|served")
    assert len(calls) == 2
    client.close()
