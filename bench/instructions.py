"""Instructions one engine worker executes per request, counted by callgrind:
``python -m bench.instructions [--scenario l7|switch|l4|tls] [--in-flight K] [--requests N1,N2]
[--product passerelle|haproxy]``.

Requests per second on a shared two-core host swing by 20-30% from one run to the next; the
user-space instructions of one worker repeat to within about 1%, so they show what a change to
the request path is worth before any load run. The engine runs with one worker under
``valgrind --tool=callgrind`` (which follows the forked worker), the bench's nginx back ends
answer, and a client sends N1 requests in one run and N2 in another: (I(N2) - I(N1)) / (N2 - N1)
leaves start-up and shut-down out. Kernel time is not counted (callgrind sees user space only).

``--in-flight K`` opens K keep-alive connections and sends a request on each before reading any
answer, as a loaded worker sees them (about 25 requests per event-loop turn at 50 wrk
connections); ``--in-flight 1`` sends one request at a time on one connection, so the loop turns
once per request.

``--scenario tls`` counts TLS offload (ECDSA P-256, TLS 1.3) with a new connection for every
request, its session resumed, one connection at a time (``--in-flight`` does not apply): what a
connection costs, accept to close, with the lightest handshake a returning client makes.

``--product haproxy`` counts HAProxy (one thread, the bench's configuration) the same way, for
the user-space side of the comparison: both products make the same system calls per request.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.backends import BackEnds
from bench.net import LOOPBACK, free_port, wait_http, wait_listening
from bench.placement import Placement, pinned
from bench.procs import Managed, running
from bench.proxies.haproxy import configuration as haproxy_configuration
from bench.proxies.passerelle import configuration
from bench.scenarios.throughput import l4_service, l7_service, switch_service
from bench.services import SWITCH_HOST, Certificate, Service, make_certificate


def tls_service(backends: BackEnds, certificates: dict[str, Certificate]) -> list[Service]:
    return [Service("tls", "http", backends.pool, offload=certificates["ecdsa"])]


SCENARIOS: dict[str, Callable[[BackEnds, dict[str, Certificate]], list[Service]]] = {
    "l7": l7_service,
    "switch": switch_service,
    "l4": l4_service,
    "tls": tls_service,
}
START_TIMEOUT = 180.0  # an interpreter under callgrind starts about fifty times slower
STOP_TIMEOUT = 60.0
CLIENT_TIMEOUT = 600.0


class Client:
    """``in_flight`` keep-alive connections; each round sends one request on every connection
    before it reads any answer."""

    def __init__(self, port: int, in_flight: int, host: str) -> None:
        self.request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode("ascii")
        self.connections = [
            socket.create_connection((LOOPBACK, port), timeout=CLIENT_TIMEOUT)
            for _ in range(in_flight)
        ]
        self.pending = [b""] * in_flight

    def send(self, count: int) -> None:
        done = 0
        while done < count:
            batch = self.connections[: count - done]
            for conn in batch:
                conn.sendall(self.request)
            for index, conn in enumerate(batch):
                self._read_response(index, conn)
            done += len(batch)

    def _read_response(self, index: int, conn: socket.socket) -> None:
        data = self.pending[index]
        while b"\r\n\r\n" not in data:
            data += self._recv(conn)
        head, _, rest = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(f"unexpected answer: {head[:80]!r}")
        length = _content_length(head)
        while len(rest) < length:
            rest += self._recv(conn)
        self.pending[index] = rest[length:]

    @staticmethod
    def _recv(conn: socket.socket) -> bytes:
        data = conn.recv(65536)
        if not data:
            raise ConnectionError("the engine closed a keep-alive connection")
        return data

    def close(self) -> None:
        for conn in self.connections:
            conn.close()


class ResumedTlsClient:
    """A new TLS connection for each request, ``Connection: close``, resuming the session the
    first one was given (as wrk does against an HTTPS URL with that header)."""

    def __init__(self, port: int, host: str) -> None:
        self.port = port
        self.request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE
        self.session: ssl.SSLSession | None = None
        self.resumed = 0

    def send(self, count: int) -> None:
        for _ in range(count):
            raw = socket.create_connection((LOOPBACK, self.port), timeout=CLIENT_TIMEOUT)
            with self.context.wrap_socket(raw, session=self.session) as conn:
                conn.sendall(self.request)
                answer = b""
                while data := conn.recv(65536):
                    answer += data
                if not answer.startswith(b"HTTP/1.1 200"):
                    raise ConnectionError(f"unexpected answer: {answer[:80]!r}")
                self.resumed += conn.session_reused
                self.session = conn.session  # the ticket came with the answer (TLS 1.3)
        if count > 1 and self.resumed == 0:
            raise RuntimeError("no TLS session was resumed: the count would be of full handshakes")

    def close(self) -> None:
        """Each connection was closed after its answer."""


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise ConnectionError("an answer without Content-Length")


def _total(out_file: Path) -> int | None:
    """The instruction total callgrind wrote for one process; None if it wrote none (the
    process did not exit normally)."""
    for line in out_file.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    return None


def _stop(engine: Managed, timeout: float, stop_signal: int = signal.SIGTERM) -> None:
    """``stop_signal`` to the supervisor, then wait for it and its worker to exit: callgrind
    writes a process's counts as it exits. (``Managed.stop`` kills what outlives the supervisor
    at once, before a worker under callgrind has written them.)"""
    tree = engine.tree()
    assert engine.process is not None
    engine.process.send_signal(stop_signal)
    deadline = time.monotonic() + timeout
    try:
        engine.process.wait(timeout)
        while any(running(pid) for pid in tree) and time.monotonic() < deadline:
            time.sleep(0.2)
    except subprocess.TimeoutExpired:
        pass
    if any(running(pid) for pid in tree):
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        engine.process.wait()
        raise RuntimeError("the engine did not stop in time; its counts were not written")


def _engine_argv(folder: Path, config: dict, services: list[Service], port: int) -> list[str]:
    """The engine with one worker, its configuration (which names the services) written out."""
    (folder / "config.json").write_text(json.dumps(config))
    return [
        sys.executable,
        "-m",
        "passerelle",
        "engine",
        "--config",
        str(folder / "config.json"),
        "--db",
        str(folder / "db"),
        "--workers",
        "1",
        "--admin",
        "off",
        "--management",
        "off",
        "--log-level",
        "WARNING",
    ]


def _haproxy_argv(folder: Path, config: dict, services: list[Service], port: int) -> list[str]:
    """HAProxy with one thread and the bench's configuration of ``services`` (the engine's
    ``config`` does not apply), in the foreground."""
    (folder / "haproxy.cfg").write_text(
        haproxy_configuration(services, {services[0].name: port}, 1)
    )
    return ["haproxy", "-db", "-f", str(folder / "haproxy.cfg")]


# How each product is started, and the signal that stops it after its last connection: both
# make it exit normally, which is when callgrind writes its counts.
PRODUCTS: dict[str, tuple[Callable[[Path, dict, list[Service], int], list[str]], int]] = {
    "passerelle": (_engine_argv, signal.SIGTERM),
    "haproxy": (_haproxy_argv, signal.SIGUSR1),  # soft stop; SIGTERM is HAProxy's hard stop
}


def count_once(
    workdir: Path,
    product: str,
    config: dict,
    services: list[Service],
    port: int,
    placement: Placement,
    run: Callable[[], None],
) -> tuple[int, Path]:
    """Instructions of the process that served the requests over one lifetime in which ``run``
    sends them, and its callgrind file."""
    folder = Path(tempfile.mkdtemp(dir=workdir))
    argv, stop_signal = PRODUCTS[product]
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/callgrind.%p"]
    command = valgrind + argv(folder, config, services, port)
    proxy = Managed(product, command, placement.proxy_cpus, folder / f"{product}.log").start()
    try:
        if services[0].offload is None:
            wait_http(port, timeout=START_TIMEOUT)
        else:
            wait_listening(port, timeout=START_TIMEOUT)
        run()
    finally:
        _stop(proxy, STOP_TIMEOUT, stop_signal)
    return _busiest(folder, proxy.pid, forks=product == "passerelle")


def _busiest(folder: Path, started: int, forks: bool) -> tuple[int, Path]:
    """The serving process's total and file. For a product that ``forks`` workers: of the
    processes forked below the one ``started``, the one that executed the most (the one that
    served the requests; a short-lived child such as a worker replaced at start-up, or a
    helper, executes far less). Otherwise the one started."""
    found: list[tuple[int, Path]] = []
    for path in folder.glob("callgrind.*"):
        total = _total(path)
        if (path.suffix != f".{started}") == forks and total is not None:
            found.append((total, path))
    if not found:
        raise RuntimeError(f"{folder}: no worker wrote its counts (did it exit normally?)")
    return max(found)


def per_request(
    scenario: str, in_flight: int, first: int, second: int, workdir: Path, product: str
) -> tuple[float, list[Path]]:
    """Instructions per request of ``product``'s serving process, and the callgrind files of
    the two runs."""
    placement = pinned()
    certificate = make_certificate(workdir, "backends", "ecdsa-p256")
    backends = BackEnds(workdir, placement, certificate).start()
    try:
        offload = {"ecdsa": make_certificate(workdir, "offload", "ecdsa-p256")}
        services = SCENARIOS[scenario](backends, offload)
        port = free_port()
        config = configuration(services, {services[0].name: port})
        host = SWITCH_HOST if scenario == "switch" else "bench.test"

        def sending(count: int) -> Callable[[], None]:
            def run() -> None:
                client: Client | ResumedTlsClient = (
                    ResumedTlsClient(port, host)
                    if scenario == "tls"
                    else Client(port, in_flight, host)
                )
                try:
                    client.send(count)
                finally:
                    client.close()

            return run

        low, low_file = count_once(
            workdir, product, config, services, port, placement, sending(first)
        )
        high, high_file = count_once(
            workdir, product, config, services, port, placement, sending(second)
        )
    finally:
        backends.stop()
    return (high - low) / (second - first), [low_file, high_file]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.instructions",
        description="Worker instructions per request, counted by callgrind.",
    )
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="l7")
    parser.add_argument("--in-flight", type=int, default=25, help="requests in flight (25)")
    parser.add_argument(
        "--requests", default="1000,4000", help="requests in the two runs (1000,4000)"
    )
    parser.add_argument(
        "--product",
        choices=sorted(PRODUCTS),
        default="passerelle",
        help="whose instructions: the engine's worker, or HAProxy with one thread",
    )
    parser.add_argument(
        "--keep-files",
        action="store_true",
        help="keep the worker's callgrind files (for callgrind_annotate) and print where",
    )
    args = parser.parse_args(argv)
    first, second = (int(n) for n in args.requests.split(","))
    if not 0 < first < second or args.in_flight < 1:
        parser.error("--requests needs two counts, the first smaller; --in-flight at least 1")
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (apt-get install valgrind)")
    if args.product == "haproxy" and shutil.which("haproxy") is None:
        parser.error("haproxy is not installed (apt-get install haproxy)")
    workdir = Path(tempfile.mkdtemp(prefix="passerelle-instructions-"))
    try:
        count, files = per_request(
            args.scenario, args.in_flight, first, second, workdir, args.product
        )
    finally:
        if not args.keep_files:
            shutil.rmtree(workdir, ignore_errors=True)
    who = "worker" if args.product == "passerelle" else "HAProxy"
    how = (
        "a new connection per request, session resumed"
        if args.scenario == "tls"
        else f"{args.in_flight} in flight"
    )
    print(
        f"{args.scenario}, {how}: {count:,.0f} {who} instructions "
        f"per request ({first} and {second} requests)"
    )
    if args.keep_files:
        print("callgrind files:", *files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
