"""What every scenario shares: the rig it runs on, the rows it produces, fair run order."""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.backends import BackEnds
from bench.placement import Placement
from bench.procs import cpu_seconds
from bench.proxies import Proxy
from bench.services import Certificate

DIRECT = "direct"  # the back end without any proxy: the ceiling of this machine


@dataclass(frozen=True)
class Settings:
    duration: float
    runs: int
    connections: tuple[int, ...]
    bulk_mb: int
    idle_connections: int
    latency_connections: int = 20
    # mean of the random pause between a connection's requests; 20 x 10 ms: about 2,000 req/s
    latency_delay_ms: int = 10
    # Passerelle's REST API and web UI on in every scenario, not only where one needs them
    management_api: bool = False


@dataclass
class Rig:
    placement: Placement
    settings: Settings
    proxies: list[Proxy]
    backends: BackEnds
    certificates: dict[str, Certificate]
    workdir: Path

    def rounds(self) -> Iterator[tuple[int, Proxy]]:
        """Every proxy once per run, the order rotated each run so that none is always first
        after an idle pause or always last in a warm machine."""
        count = len(self.proxies)
        for run in range(self.settings.runs):
            for i in range(count):
                yield run, self.proxies[(run + i) % count]


@dataclass
class Row:
    scenario: str
    metric: str
    # True: higher is better; False: lower is better; None: context, not a score
    higher_is_better: bool | None
    values: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, product: str, value: float) -> None:
        self.values.setdefault(product, []).append(value)

    def note(self, product: str, text: str) -> None:
        self.notes.append(f"{product}: {text}")

    def median(self, product: str) -> float | None:
        values = self.values.get(product)
        return statistics.median(values) if values else None

    def flagged(self, product: str) -> bool:
        return any(n.startswith(f"{product}:") for n in self.notes)


def proxy_cpu(proxy: Proxy) -> float:
    """CPU seconds used so far by the proxy's whole process tree."""
    return cpu_seconds(proxy.pids())


@contextlib.contextmanager
def guarded(row: Row, product: str) -> Iterator[None]:
    """One measurement; a failure is written next to the figures rather than ending the whole
    run (one product failing a scenario is itself a result)."""
    try:
        yield
    except Exception as exc:
        row.note(product, f"failed: {type(exc).__name__}: {str(exc)[:300]}")
