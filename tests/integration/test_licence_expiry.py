"""What licence expiry does to a running engine, with the clock moved: new connections are
refused, established ones carry on, the admin listener stays up, and an activation reopens."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from gevent.server import StreamServer

from support.engine import EngineProcess, free_port

SERIAL = "PSL-TESTEXPIRY01"


def echo_server() -> StreamServer:
    server = StreamServer(("127.0.0.1", 0), _echo)
    server.start()
    return server


def _echo(conn: socket.socket, _peer: tuple) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


def service(port: int, backend: int) -> dict:
    return {
        "virtual_services": [
            {
                "name": "tcp",
                "address": "127.0.0.1",
                "ports": [port],
                "mode": "l4",
                "health_check": {"type": "none"},
                "real_servers": [{"address": "127.0.0.1", "port": backend}],
            }
        ]
    }


def connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"ping")
            return sock.recv(4) == b"ping"
    except OSError:
        return False


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def write_identity(directory: Path, first_boot: dt.datetime) -> None:
    (directory / "identity.json").write_text(
        json.dumps({"serial": SERIAL, "first_boot": first_boot.isoformat().replace("+00:00", "Z")})
    )


def test_expiry_refuses_new_connections_keeps_established_and_activation_reopens(tmp_path):
    key = ed25519.Ed25519PrivateKey.generate()
    private = tmp_path / "vendor.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # The 30-day demo ends four seconds after the engine starts.
    write_identity(tmp_path, dt.datetime.now(dt.UTC) - dt.timedelta(days=30, seconds=-4))
    backend = echo_server()
    port = free_port()
    engine = EngineProcess(tmp_path)
    engine.extra_env = {
        "PASSERELLE_LICENCE_RECHECK": "0.5",
        "PASSERELLE_LICENCE_PUBLIC_KEY": public.decode(),
    }
    try:
        engine.start(service(port, backend.server_port))
        assert connects(port)
        established = socket.create_connection(("127.0.0.1", port), timeout=5)
        assert wait_for(lambda: not connects(port), timeout=15), engine.tail()
        # Established connections carry on; the admin listener still answers.
        established.sendall(b"still here")
        assert established.recv(64) == b"still here"
        assert engine.status()["version"] >= 1
        licence = tmp_path / "licence.json"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "passerelle",
                "licence",
                "issue",
                "--key",
                str(private),
                "--serial",
                SERIAL,
                "--days",
                "365",
                "--output",
                str(licence),
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "passerelle",
                "licence",
                "activate",
                str(licence),
                "--dir",
                str(tmp_path),
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "PASSERELLE_LICENCE_PUBLIC_KEY": public.decode()},
        )
        assert wait_for(lambda: connects(port), timeout=15), engine.tail()
        established.close()
    finally:
        engine.stop()
        backend.stop()


def test_an_engine_started_after_expiry_never_listens(tmp_path):
    write_identity(tmp_path, dt.datetime.now(dt.UTC) - dt.timedelta(days=45))
    backend = echo_server()
    port = free_port()
    engine = EngineProcess(tmp_path)
    try:
        engine.start(service(port, backend.server_port))
        assert not connects(port)
        assert "expired" in engine.tail()
    finally:
        engine.stop()
        backend.stop()
