"""Run `passerelle engine` as real processes against a store in a temporary folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from passerelle.engine.manage.store import ConfigStore
from passerelle.engine.model.errors import validate_config
from passerelle.testing.ports import free_port

# A TCP health check quick enough for tests: a stopped real server is down within a second.
TCP_HEALTH = {"type": "tcp", "interval": 0.3, "timeout": 0.25, "retries": 1, "rise": 1}


class EngineProcess:
    def __init__(
        self, workdir: Path, workers: int = 2, extra_args: tuple[str, ...] = ("--management", "off")
    ) -> None:
        # The management API is tested on its own; data-plane tests leave it off.
        self.extra_args = extra_args
        self.extra_env: dict[str, str] = {}
        self.workdir = workdir
        self.db = workdir / "passerelle.db"
        self.admin_port = free_port()
        self.workers = workers
        self.process: subprocess.Popen | None = None
        self.log = workdir / "engine.log"
        self.store = ConfigStore(self.db)

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self, config: dict[str, Any] | None = None) -> EngineProcess:
        if config is not None:
            self.store.apply(validate_config(config), author="test")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.extra_env}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "passerelle",
                "engine",
                "--db",
                str(self.db),
                "--workers",
                str(self.workers),
                "--admin",
                f"127.0.0.1:{self.admin_port}",
                *self.extra_args,
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.wait_version(self.store.latest_number())
        return self

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.admin + path, timeout=5) as response:
            body = response.read()
        return json.loads(body) if path != "/metrics" else body.decode()

    def status(self) -> dict[str, Any]:
        return self.get("/status")

    def wait_version(self, version: int, timeout: float = 20.0) -> dict[str, Any]:
        """Until every worker runs configuration ``version``."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"engine exited: {self.log.read_text()[-3000:]}")
            try:
                last = self.status()
                if last["version"] == version and all(
                    w["version"] == version for w in last["workers"]
                ):
                    return last
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"engine did not reach version {version}: {last}\n{self.tail()}")

    def apply(self, config: dict[str, Any]) -> dict[str, Any]:
        version = self.store.apply(validate_config(config), author="test")
        return self.wait_version(version.number)

    def stats(self) -> list[dict[str, Any]]:
        return self.get("/stats")

    def server_stats(self, vs: str, server: str, subvs: str | None = None) -> dict[str, Any]:
        for service in self.stats():
            if service["name"] != vs:
                continue
            pools = (
                [service] if subvs is None else [s for s in service["subvs"] if s["name"] == subvs]
            )
            for pool in pools:
                for row in pool["real_servers"]:
                    if row["server"] == server:
                        return row
        raise KeyError(server)

    def wait_health(
        self, vs: str, server: str, health: str, subvs: str | None = None, timeout: float = 10.0
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server_stats(vs, server, subvs)["health"] == health:
                return
            time.sleep(0.05)
        raise TimeoutError(f"{server} did not become {health}")

    def tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.store.close()


def shared_engine(workers: int = 2) -> Callable[..., Iterator[EngineProcess]]:
    """A module-scoped ``engine`` fixture: ``engine = shared_engine()`` in a test module.

    One engine for the module (starting one costs more than the tests): each test applies its
    own services under names of its own, so counters and persistence do not mix.
    """

    @pytest.fixture(scope="module", name="engine")
    def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
        process = EngineProcess(tmp_path_factory.mktemp("engine"), workers=workers)
        process.start({"virtual_services": []})
        yield process
        process.stop()

    return engine
