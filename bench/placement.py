"""Where processes run: pinned (proxy on one core, load and back ends on another) or unpinned."""

from __future__ import annotations

import os
from dataclasses import dataclass

from bench.procs import CpuSet


@dataclass(frozen=True)
class Placement:
    name: str  # "pinned" or "unpinned"
    proxy_cpus: CpuSet
    load_cpus: CpuSet  # wrk, curl, the handshake client and the back-end nginx
    workers: int  # Passerelle workers = HAProxy nbthread = nginx worker_processes
    load_threads: int  # wrk -t

    def describe(self) -> str:
        if self.proxy_cpus is None:
            return (
                f"unpinned: Passerelle {self.workers} workers, HAProxy nbthread {self.workers}, "
                f"nginx {self.workers} workers; load generator and back ends share all cores"
            )
        return (
            f"pinned: proxy on CPU {_cpus(self.proxy_cpus)} (Passerelle {self.workers} worker, "
            f"HAProxy nbthread {self.workers}, nginx {self.workers} worker); "
            f"wrk/curl/handshake client and back ends on CPU {_cpus(self.load_cpus)}"
        )


def _cpus(cpus: CpuSet) -> str:
    return ",".join(str(c) for c in sorted(cpus or ()))


def pinned() -> Placement:
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        raise RuntimeError("pinned mode needs at least 2 CPUs")
    return Placement(
        name="pinned",
        proxy_cpus=frozenset({available[0]}),
        load_cpus=frozenset({available[1]}),
        workers=1,
        load_threads=1,
    )


def unpinned(workers: int = 2) -> Placement:
    return Placement(
        name="unpinned", proxy_cpus=None, load_cpus=None, workers=workers, load_threads=workers
    )
