"""pytest fixtures: an engine per test and sample servers that are stopped afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from passerelle.demo.backends import SampleServer, TcpPort

from support.engine import EngineProcess
from support.held_counts import stop_flushing
from support.http_peers import RawServers


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    process = EngineProcess(tmp_path)
    yield process
    process.stop()


class Servers:
    def __init__(self) -> None:
        self.started: list[SampleServer | TcpPort] = []

    def http(self, name: str, address: str = "127.0.0.1", **kwargs) -> SampleServer:
        server = SampleServer(name, address, 0, **kwargs).start()
        self.started.append(server)
        return server

    def tcp(self, address: str = "127.0.0.1", port: int = 0) -> TcpPort:
        server = TcpPort(address, port).start()
        self.started.append(server)
        return server

    def stop(self) -> None:
        for server in self.started:
            server.stop()


@pytest.fixture
def servers() -> Iterator[Servers]:
    pool = Servers()
    yield pool
    pool.stop()


@pytest.fixture
def raw() -> Iterator[RawServers]:
    """Raw-socket HTTP peers for protocol tests, stopped afterwards."""
    started = RawServers()
    yield started
    started.stop()


@pytest.fixture(autouse=True)
def _stop_flushing_held_counts() -> Iterator[None]:
    yield
    stop_flushing()
