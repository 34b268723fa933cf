"""The load generators: wrk (keep-alive throughput, paced latency), curl (bulk transfer),
``bench.handshake_client`` (full TLS handshakes, never resumed) and a holder of idle
connections."""

from __future__ import annotations

import re
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.net import LOOPBACK
from bench.procs import CpuSet, run_tool

_REQUESTS = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)")
_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_TO_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int  # socket errors of any kind
    non_2xx: int
    p50_ms: float | None
    p99_ms: float | None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def problems(self) -> str:
        parts = []
        if self.errors:
            parts.append(f"{self.errors} socket errors")
        if self.non_2xx:
            parts.append(f"{self.non_2xx} non-2xx")
        return ", ".join(parts)


def parse_wrk(output: str) -> WrkResult:
    match = _REQUESTS.search(output)
    if match is None:
        raise RuntimeError(f"unexpected wrk output: {output[-500:]}")
    errors = _ERRORS.search(output)
    non_2xx = _NON_2XX.search(output)
    percentiles = {
        p: float(value) * _TO_SECONDS[unit] * 1000 for p, value, unit in _PERCENTILE.findall(output)
    }
    return WrkResult(
        requests=int(match.group(1)),
        seconds=float(match.group(2)) * _TO_SECONDS[match.group(3)],
        errors=sum(int(n) for n in errors.groups()) if errors else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        p50_ms=percentiles.get("50"),
        p99_ms=percentiles.get("99"),
    )


def wrk(
    url: str,
    *,
    connections: int,
    duration: float,
    threads: int,
    cpus: CpuSet,
    headers: Sequence[str] = (),
    script: Path | None = None,
    latency: bool = False,
) -> WrkResult:
    argv = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "5s",
    ]
    for header in headers:
        argv += ["-H", header]
    if script is not None:
        argv += ["-s", str(script)]
    if latency:
        argv.append("--latency")
    argv.append(url)
    result = run_tool(argv, cpus, timeout=duration + 60)
    if script is not None and str(script) in result.stderr:
        # wrk reports a script it cannot load and then runs without it (unpaced), exit status 0
        raise RuntimeError(f"wrk did not run {script.name}: {result.stderr.strip()[-300:]}")
    return parse_wrk(result.stdout)


# Pauses in whole milliseconds, the resolution of wrk's timers; the mean of the rounded value is
# still MEAN_MS. A fixed seed per wrk thread: every proxy sees the same sequence of pauses, and two
# threads do not draw the same one.
_PACING_LUA = """\
local count = 0
function setup(thread)
  count = count + 1
  thread:set("seed", count)
end
function init(args)
  math.randomseed(seed or 1)
end
function delay()
  return math.floor(-MEAN_MS * math.log(1 - math.random()) + 0.5)
end
"""


def pacing_script(folder: Path, mean_delay_ms: int) -> Path:
    """A wrk script that pauses between a connection's requests (and before its first) for a
    random time, exponentially distributed with mean ``mean_delay_ms``: about
    connections * 1000 / mean_delay_ms requests per second, arriving independently of each other
    like separate clients' requests.

    A fixed pause would keep the connections in step: wrk opens them together, and a pause that
    starts when the response arrives and ends on a whole-millisecond timer tick brings back in
    step the connections a burst leaves in the same millisecond; every pause then ends in a burst
    of requests, and p99 measures how long a proxy takes to drain it."""
    path = folder / f"pace-exponential-{mean_delay_ms}ms.lua"
    path.write_text(_PACING_LUA.replace("MEAN_MS", str(mean_delay_ms)))
    return path


def bulk(url: str, count: int, cpus: CpuSet, timeout: float) -> tuple[int, float]:
    """(bytes, seconds) for ``count`` sequential downloads on one keep-alive connection."""
    argv = ["curl", "-s", "--fail", "--max-time", str(int(timeout)), "-w", "%{size_download}\\n"]
    for _ in range(count):
        argv += ["-o", "/dev/null", url]
    started = time.monotonic()
    result = run_tool(argv, cpus, timeout=timeout + 10)
    elapsed = time.monotonic() - started
    return sum(int(float(n)) for n in result.stdout.split()), elapsed


HANDSHAKE_CLIENT = Path(__file__).with_name("handshake_client.py")
_HANDSHAKES = re.compile(r"handshakes (\d+) tickets (\d+)")


@dataclass(frozen=True)
class HandshakeResult:
    count: int  # full handshakes completed
    with_ticket: int  # of which the server sent a session ticket: it finished its side too


def full_handshakes(port: int, seconds: float, cpus: CpuSet) -> HandshakeResult:
    """Full TLS handshakes one client made in ``seconds``, one connection after another, never
    resuming a session; each ends with the server's session tickets read and a plain close (see
    ``bench/handshake_client.py`` for why not ``openssl s_time``)."""
    result = run_tool(
        [
            sys.executable,
            str(HANDSHAKE_CLIENT),
            LOOPBACK,
            str(port),
            str(max(1, round(seconds))),
        ],
        cpus,
        timeout=seconds + 60,
    )
    match = _HANDSHAKES.search(result.stdout)
    if match is None:
        raise RuntimeError(f"unexpected handshake client output: {result.stdout[-500:]}")
    return HandshakeResult(int(match.group(1)), int(match.group(2)))


class IdleConnections:
    """``count`` client connections that each made one keep-alive request and then stay idle,
    the way browsers hold connections open between page loads."""

    REQUEST = b"GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n"

    def __init__(self, port: int) -> None:
        self.port = port
        self.sockets: list[socket.socket] = []

    def open(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for _ in range(count):
            if time.monotonic() > deadline:
                raise TimeoutError(f"opened only {len(self.sockets)} of {count} connections")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sockets.append(sock)
            sock.settimeout(10)
            sock.connect((LOOPBACK, self.port))
            sock.sendall(self.REQUEST)
            _read_response(sock)

    def still_open(self) -> int:
        """How many are still open (a proxy that dropped some would look cheaper)."""
        alive = 0
        for sock in self.sockets:
            sock.setblocking(False)
            try:
                alive += sock.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        return alive

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)


def _read_response(sock: socket.socket) -> None:
    """Read one whole small response, so that nothing is left unread on an idle connection."""
    response = b""
    while b"\r\n\r\n" not in response:
        data = sock.recv(4096)
        if not data:
            raise ConnectionError("proxy closed an idle connection's first request")
        response += data
    head, _, body = response.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"unexpected answer {head[:60]!r}")
    length = _CONTENT_LENGTH.search(head + b"\r\n")
    missing = (int(length.group(1)) if length else 0) - len(body)
    while missing > 0:
        data = sock.recv(missing)
        if not data:
            raise ConnectionError("proxy closed mid-body")
        missing -= len(data)
