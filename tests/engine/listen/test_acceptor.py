"""The acceptor over real loopback sockets: hand-over of descriptors in the event loop, close,
and a pause instead of a spin when the process runs out of descriptors."""

from __future__ import annotations

import logging
import os
import resource
import socket

import gevent
import pytest
from gevent import socket as gsocket

from passerelle.engine.listen import acceptor as acceptor_module
from passerelle.engine.listen.acceptor import Acceptor
from passerelle.engine.listen.sockets import tcp_listener


def _wait_for(condition, seconds: float = 5.0) -> None:
    deadline = gevent.get_hub().loop.now() + seconds
    while not condition():
        if gevent.get_hub().loop.now() > deadline:
            raise AssertionError("condition not reached")
        gevent.sleep(0.01)


def _echo_once(fd: int) -> None:
    with socket.socket(fileno=fd) as sock:
        sock.setblocking(True)
        sock.sendall(sock.recv(100).upper())


def test_each_connection_reaches_the_callback_with_its_peer():
    accepted: list[tuple[int, tuple]] = []
    server = Acceptor(tcp_listener("127.0.0.1", 0), lambda fd, peer: accepted.append((fd, peer)))
    port = server.listener.getsockname()[1]
    server.start()
    clients = [gsocket.create_connection(("127.0.0.1", port)) for _ in range(5)]
    try:
        _wait_for(lambda: len(accepted) == 5)
        assert {peer for _, peer in accepted} == {c.getsockname() for c in clients}
        # The descriptors are live connections to those clients.
        fd_for = {peer: fd for fd, peer in accepted}
        for client in clients:
            os.write(fd_for[client.getsockname()], b"ping")
            assert client.recv(4) == b"ping"
    finally:
        for fd, _ in accepted:
            os.close(fd)
        for client in clients:
            client.close()
        server.close()


def test_a_failing_callback_does_not_stop_the_listener(caplog):
    calls: list[int] = []

    def flaky(fd: int, _peer: tuple) -> None:
        calls.append(fd)
        if len(calls) == 1:
            os.close(fd)
            raise RuntimeError("boom")
        gevent.spawn(_echo_once, fd)

    server = Acceptor(tcp_listener("127.0.0.1", 0), flaky)
    port = server.listener.getsockname()[1]
    server.start()
    try:
        with caplog.at_level(logging.ERROR), gsocket.create_connection(("127.0.0.1", port)):
            _wait_for(lambda: len(calls) == 1)
        assert "could not be served" in caplog.text
        with gsocket.create_connection(("127.0.0.1", port), timeout=5) as second:
            second.sendall(b"hello")
            assert second.recv(100) == b"HELLO"
    finally:
        server.close()


def test_close_stops_accepting_and_leaves_accepted_connections_alone():
    accepted: list[int] = []
    server = Acceptor(tcp_listener("127.0.0.1", 0), lambda fd, _peer: accepted.append(fd))
    port = server.listener.getsockname()[1]
    server.start()
    client = gsocket.create_connection(("127.0.0.1", port))
    try:
        _wait_for(lambda: len(accepted) == 1)
        server.close()
        with pytest.raises(ConnectionRefusedError):
            gsocket.create_connection(("127.0.0.1", port), timeout=2)
        os.write(accepted[0], b"still here")
        assert client.recv(100) == b"still here"
    finally:
        client.close()
        for fd in accepted:
            os.close(fd)


def test_out_of_descriptors_pauses_accepting_then_resumes(caplog, monkeypatch):
    monkeypatch.setattr(acceptor_module, "PAUSE_MIN", 0.05)
    accepted: list[int] = []
    server = Acceptor(tcp_listener("127.0.0.1", 0), lambda fd, _peer: accepted.append(fd))
    port = server.listener.getsockname()[1]
    # Three clients wait in the backlog before the acceptor first runs.
    clients = [gsocket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.open(os.devnull, os.O_RDONLY)  # the kernel gives the lowest free number
    os.close(lowest_free)
    try:
        # The number accept() would get is now over the limit: it fails with EMFILE.
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
        with caplog.at_level(logging.WARNING):
            server.start()
            _wait_for(lambda: "not accepting" in caplog.text)
        assert accepted == []
        assert not server.watcher.active  # paused, not spinning on the error
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        _wait_for(lambda: len(accepted) == 3)
        assert server.watcher.active
    finally:
        for fd in accepted:
            os.close(fd)
        for client in clients:
            client.close()
        server.close()
