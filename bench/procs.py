"""Processes the benchmark starts: CPU placement, CPU time and memory of a whole process tree,
and stopping strictly by PID (never by name, never a system service)."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")

CpuSet = frozenset[int] | None


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; every process started later inherits it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def _placer(cpus: CpuSet) -> Callable[[], None] | None:
    if cpus is None:
        return None

    def place() -> None:
        os.sched_setaffinity(0, cpus)

    return place


class Managed:
    """One long-running process (a proxy or the back ends) and the tree below it."""

    def __init__(self, name: str, argv: Sequence[str], cpus: CpuSet, log: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.cpus = cpus
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str] | None = None) -> Managed:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_placer(self.cpus),
                env=env,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tree(self) -> list[int]:
        return [self.pid, *descendants(self.pid)] if self.alive() else []

    def wait(self, timeout: float) -> None:
        """Until the process exits by itself; subprocess.TimeoutExpired when it does not."""
        if self.process is not None:
            self.process.wait(timeout)

    def log_tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        below = descendants(self.pid)
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        # children that outlived their parent (a crashed supervisor, say) are ours too
        for pid in below:
            _kill_if_alive(pid)


def _kill_if_alive(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name may contain spaces and parentheses: split after the last ')'
        fields = stat[stat.rindex(b")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(pid: int) -> list[int]:
    parents = _parents()
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found.extend(children)
        frontier.extend(children)
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` still runs: a zombie has finished (and flushed whatever it writes on
    exit) even while its parent has not reaped it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] != b"Z"


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU of the processes, including their children that have exited."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        # utime, stime, cutime, cstime are fields 14-17 of stat(5); 'state' is field 3
        ticks += sum(int(value) for value in fields[11:15])
    return ticks / CLK_TCK


def memory_kb(pids: Iterable[int]) -> tuple[int, int]:
    """(RSS, PSS) summed over the processes. RSS counts shared pages once per process; PSS
    splits them, so it is the fairer total for several processes mapping the same libraries."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            continue
    return rss, pss


def run_tool(
    argv: Sequence[str], cpus: CpuSet, timeout: float, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """A short-lived client (wrk, curl, handshakes) placed on the load generator's CPUs."""
    result = subprocess.run(
        list(argv),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_placer(cpus),
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{argv[0]} exited with {result.returncode}: {(result.stderr or result.stdout)[-800:]}"
        )
    return result


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")
