"""What the scenarios need from a proxy, whichever product it is."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from bench.net import free_port, wait_http, wait_listening
from bench.placement import Placement
from bench.procs import Managed, descendants
from bench.services import Service

READY_TIMEOUT = 30.0


class Proxy(ABC):
    product: ClassVar[str]

    def __init__(self, workdir: Path, placement: Placement, management_api: bool = False) -> None:
        self.workdir = workdir / self.product.lower()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        self.placement = placement
        # Only a product with a management listener of its own (Passerelle) makes use of it.
        self.management_api = management_api
        self.services: list[Service] = []
        self.ports: dict[str, int] = {}
        self.processes: list[Managed] = []

    def start(self, services: Sequence[Service]) -> None:
        self.services = list(services)
        self.ports = {service.name: free_port() for service in self.services}
        self.launch()
        self.wait_ready()

    def port(self, service: str) -> int:
        return self.ports[service]

    def wait_ready(self) -> None:
        for service in self.services:
            port = self.ports[service.name]
            if service.offload is None:
                wait_http(port, READY_TIMEOUT)
            else:
                wait_listening(port, READY_TIMEOUT)

    def pids(self) -> list[int]:
        """Every process of this proxy now: the main one(s) and all their children."""
        pids: list[int] = []
        for process in self.processes:
            if process.alive():
                pids += [process.pid, *descendants(process.pid)]
        return pids

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def log_tail(self) -> str:
        return "\n".join(p.log_tail(1500) for p in self.processes)

    def replace_service(self, service: Service) -> None:
        self.services = [service if s.name == service.name else s for s in self.services]

    def settle(self) -> None:
        """After a reload: until only the current generation of processes is left."""
        return None  # most products keep the same processes across a reload

    @abstractmethod
    def launch(self) -> None:
        """Write the configuration for ``self.services`` on ``self.ports`` and start."""

    @abstractmethod
    def reconfigure(self, service: Service) -> None:
        """Replace one service's definition (same port) the product's usual live way."""
