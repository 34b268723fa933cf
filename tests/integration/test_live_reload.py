"""Configuration changes applied live: established connections survive, new requests follow."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import gevent

from support.engine import free_port


def http_service(port: int, servers, **extra) -> dict:
    return {
        "name": "web",
        "address": "127.0.0.1",
        "ports": [port],
        "health_check": {"type": "tcp", "interval": 0.3, "timeout": 0.25},
        "real_servers": [{"address": s.address, "port": s.port} for s in servers],
        **extra,
    }


class KeepAliveClient:
    """One client TCP connection that must stay the same connection for the whole test."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.local = self.sock.getsockname()
        self.buffer = b""

    def get(self, path: str = "/") -> dict:
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: live.test\r\n\r\n".encode())
        while b"\r\n\r\n" not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("proxy closed the client connection")
            self.buffer += data
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        length = int(
            next(
                line.split(b":", 1)[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
        )
        while len(self.buffer) < length:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("proxy closed mid-body")
            self.buffer += data
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        status = int(head.split(b" ", 2)[1])
        assert status == 200, (status, body)
        return json.loads(body)


def test_config_changes_under_traffic_lose_no_request(engine, servers):
    a, b, c = servers.http("a"), servers.http("b"), servers.http("c")
    port = free_port()
    engine.start({"virtual_services": [http_service(port, [a, b])]})
    clients = [KeepAliveClient(port) for _ in range(4)]
    answered: list[str] = []
    failures: list[BaseException] = []
    running = True

    def traffic(client: KeepAliveClient) -> None:
        while running:
            try:
                answered.append(client.get()["server"])
            except BaseException as exc:  # any failure at all fails the test
                failures.append(exc)
                return

    workers = [gevent.spawn(traffic, client) for client in clients]
    try:
        gevent.sleep(0.3)
        versions = [
            [http_service(port, [a, b, c])],
            [http_service(port, [a, b, c], headers={"request_add": {"X-Version": "3"}})],
            [http_service(port, [b, c])],  # a removed while requests are flowing
            [http_service(port, [b, c], scheduling="least_connection")],
        ]
        for services in versions:
            engine.apply({"virtual_services": services})
            gevent.sleep(0.3)
        before = len(answered)
        gevent.sleep(0.5)
        recent = answered[before:]
    finally:
        running = False
        gevent.joinall(workers, timeout=5)
    assert not failures, f"{failures!r}\n{engine.tail()}"
    assert len(answered) > 100
    # Same client connections throughout, and the last configuration is the one followed.
    assert all(client.sock.getsockname() == client.local for client in clients)
    assert recent and set(recent) <= {"b", "c"}, set(recent)
    assert "c" in answered


def test_established_l4_connection_survives_reloads_that_touch_its_service(engine):
    echo = socket.socket()
    echo.bind(("127.0.0.1", 0))
    echo.listen(8)

    def serve() -> None:
        conn, _ = echo.accept()
        while data := conn.recv(65536):
            conn.sendall(data)

    server = gevent.spawn(serve)
    port = free_port()

    def l4(idle: float) -> dict:
        return {
            "virtual_services": [
                {
                    "name": "tcp",
                    "address": "127.0.0.1",
                    "ports": [port],
                    "mode": "l4",
                    "idle_timeout": idle,
                    "health_check": {"type": "none"},
                    "real_servers": [{"address": "127.0.0.1", "port": echo.getsockname()[1]}],
                }
            ]
        }

    engine.start(l4(60))
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        for round_number in range(3):
            engine.apply(l4(60 + round_number + 1))
            payload = f"round {round_number}".encode()
            client.sendall(payload)
            assert client.recv(100) == payload
    finally:
        client.close()
        server.kill()
        echo.close()


def test_invalid_apply_names_the_field_and_leaves_the_running_config(engine, servers, tmp_path):
    a = servers.http("a")
    port = free_port()
    engine.start({"virtual_services": [http_service(port, [a])]})
    running = engine.status()["version"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"virtual_services:\n  - name: web\n    address: 127.0.0.1\n    ports: [{port}]\n"
        "    real_servers:\n      - {address: 127.0.0.1, port: 70000}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "passerelle", "config", "apply", str(bad), "--db", str(engine.db)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "virtual_services[0].real_servers[0].port" in result.stderr
    time.sleep(0.3)  # more than the engine's store poll interval
    assert engine.status()["version"] == running
    assert engine.store.latest_number() == running
    client = KeepAliveClient(port)
    assert client.get()["server"] == "a"


def test_a_worker_that_dies_is_replaced_and_serves_again(engine, servers):
    a = servers.http("a")
    port = free_port()
    engine.start({"virtual_services": [http_service(port, [a])]})
    victim = engine.status()["workers"][0]["pid"]
    os.kill(victim, 9)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        workers = engine.status()["workers"]
        if workers[0]["pid"] not in (victim, None) and workers[0]["version"] == 1:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"worker not replaced: {engine.status()}\n{engine.tail()}")
    for _ in range(10):
        assert KeepAliveClient(port).get()["server"] == "a"
