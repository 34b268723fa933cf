"""A small network in namespaces for HA tests: two appliances, a client and the back ends.

All of it lives in namespaces this module creates (one holding the bridge, one per machine),
addressed in 10.77.0.0/24; nothing touches the host's own interfaces. ``Topology.close``
kills what it started and deletes every namespace, also after a failed test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from passerelle.engine.manage.store import ConfigStore
from passerelle.engine.model.errors import validate_config

ROOT = Path(__file__).resolve().parents[2]
PASSERELLE = [sys.executable, "-m", "passerelle"]
PASSWORD = "ha-test-Password-1"
VIP = "10.77.0.100"
HOSTS = {"pa": "10.77.0.11", "pb": "10.77.0.12", "cl": "10.77.0.30", "be": "10.77.0.21"}
CLIENTS = [f"10.77.0.{n}" for n in range(30, 38)]  # one client per source address
SERVERS = {"be1": "10.77.0.21", "be2": "10.77.0.22"}
MANAGEMENT_PORT = 8443


def unavailable() -> str | None:
    """Why these tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    for tool in ("ip", "keepalived", "curl"):
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian package {'iproute2' if tool == 'ip' else tool})"
    probe = f"psl-probe-{os.getpid()}"
    created = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if created.returncode != 0:
        return f"ip netns does not work here: {created.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip() or result.stdout.strip()}")
    return result


def service_config() -> dict[str, Any]:
    return {
        "virtual_services": [
            {
                "name": "web",
                "address": VIP,
                "ports": [80],
                "mode": "http",
                "scheduling": "round_robin",
                "persistence": {"mode": "source_ip", "timeout": 600},
                "health_check": {"type": "tcp", "interval": 1, "timeout": 0.5},
                "real_servers": [
                    {"address": address, "port": 8080} for address in SERVERS.values()
                ],
            }
        ]
    }


@dataclass
class Appliance:
    name: str  # its namespace
    address: str
    workdir: Path
    process: subprocess.Popen | None = None
    starts: int = 0

    @property
    def state_file(self) -> Path:
        return self.workdir / "ha-state"

    @property
    def api_url(self) -> str:
        return f"https://{self.address}:{MANAGEMENT_PORT}/api/v1"

    def state(self) -> str:
        try:
            return self.state_file.read_text().splitlines()[0]
        except (FileNotFoundError, IndexError):
            return "standalone"


@dataclass
class Topology:
    workdir: Path
    prefix: str = field(default_factory=lambda: f"psl{os.getpid() % 100000}")
    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen] = field(default_factory=list)
    appliances: dict[str, Appliance] = field(default_factory=dict)

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def exec(self, name: str, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns(name), *argv]

    # -- the network ------------------------------------------------------------------------

    def build(self) -> None:
        bridge = self.ns("br")
        for name in ("br", "pa", "pb", "cl", "be"):
            run("ip", "netns", "add", self.ns(name))
            self.namespaces.append(self.ns(name))
            run("ip", "-n", self.ns(name), "link", "set", "lo", "up")
        run("ip", "-n", bridge, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", bridge, "link", "set", "br0", "up")
        extra = {"cl": CLIENTS[1:], "be": list(SERVERS.values())[1:]}
        for name, address in HOSTS.items():
            port = f"v-{name}"
            run(
                "ip",
                "-n",
                bridge,
                "link",
                "add",
                port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                self.ns(name),
            )
            run("ip", "-n", bridge, "link", "set", port, "master", "br0", "up")
            for each in [address, *extra.get(name, [])]:
                run("ip", "-n", self.ns(name), "address", "add", f"{each}/24", "dev", "eth0")
            run("ip", "-n", self.ns(name), "link", "set", "eth0", "up")

    def link(self, name: str, up: bool) -> None:
        run("ip", "-n", self.ns(name), "link", "set", "eth0", "up" if up else "down")

    # -- processes -------------------------------------------------------------------------

    def spawn(self, name: str, argv: list[str], log: Path) -> subprocess.Popen:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with log.open("ab") as output:
            process = subprocess.Popen(
                self.exec(name, *argv), stdout=output, stderr=subprocess.STDOUT, env=env, cwd=ROOT
            )
        self.processes.append(process)
        return process

    def start_backends(self) -> None:
        code = (
            "from gevent import monkey; monkey.patch_all()\n"
            "import gevent\n"
            "from passerelle.demo.backends import SampleServer\n"
            + "".join(f"SampleServer({n!r}, {a!r}, 8080).start()\n" for n, a in SERVERS.items())
            + "gevent.wait()\n"
        )
        self.spawn("be", [sys.executable, "-c", code], self.workdir / "backends.log")

    def appliance(self, name: str) -> Appliance:
        if name not in self.appliances:
            workdir = self.workdir / name
            workdir.mkdir()
            (workdir / "password").write_text(PASSWORD + "\n")
            with ConfigStore(workdir / "passerelle.db") as store:
                store.apply(validate_config(service_config()), author="test")
            self.appliances[name] = Appliance(name, HOSTS[name], workdir)
        return self.appliances[name]

    def start_engine(self, name: str) -> Appliance:
        appliance = self.appliance(name)
        workdir = appliance.workdir
        appliance.starts += 1
        appliance.process = self.spawn(
            name,
            [
                *PASSERELLE,
                "engine",
                "--db",
                str(workdir / "passerelle.db"),
                "--workers",
                "1",
                "--admin",
                "127.0.0.1:9900",
                "--management",
                f"{appliance.address}:{MANAGEMENT_PORT}",
                "--admin-password-file",
                str(workdir / "password"),
                "--ha-state-file",
                str(appliance.state_file),
                "--ha-run-dir",
                str(workdir / "ha"),
            ],
            workdir / "engine.log",
        )
        wait_for(lambda: self.api(name, "GET", "/health")[0] == 200, 60, f"{name}'s API")
        return appliance

    def kill_engine(self, name: str) -> None:
        process = self.appliances[name].process
        assert process is not None
        # ``ip netns exec`` execs the command, so this pid is the engine itself.
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=5)

    # -- talking to things -----------------------------------------------------------------

    def api(
        self, name: str, method: str, path: str, body: Any = None, via: str = "cl"
    ) -> tuple[int, Any]:
        """A management API call to appliance ``name``, made from namespace ``via``."""
        url = self.appliances[name].api_url + path
        argv = [
            "curl",
            "-sk",
            "-m",
            "10",
            "-u",
            f"admin:{PASSWORD}",
            "-X",
            method,
            url,
            "-w",
            "\n%{http_code}",
        ]
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
        result = subprocess.run(self.exec(via, *argv), capture_output=True, text=True, timeout=20)
        text, _, status = result.stdout.rpartition("\n")
        try:
            parsed = json.loads(text) if text.strip() else None
        except ValueError:
            parsed = text
        return int(status or 0), parsed

    def get(self, client: str = CLIENTS[0], path: str = "/") -> tuple[int, dict[str, Any] | None]:
        """One request to the virtual service from source address ``client``."""
        argv = ["curl", "-s", "-m", "2", "--interface", client, f"http://{VIP}{path}", "-D", "-"]
        result = subprocess.run(self.exec("cl", *argv), capture_output=True, text=True, timeout=10)
        if result.returncode != 0:
            return 0, None
        # text mode turned every CRLF into LF
        head, _, text = result.stdout.partition("\n\n")
        status = int(head.split()[1])
        headers = dict(line.split(": ", 1) for line in head.split("\n")[1:] if ": " in line)
        try:
            record = json.loads(text)
        except ValueError:
            record = {"_text": result.stdout}
        record["_headers"] = {k.lower(): v for k, v in headers.items()}
        return status, record

    def start_probe(self, interval: float = 0.02) -> Prober:
        return Prober(self, interval)

    def close(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for namespace in self.namespaces:
            # Anything still inside (a keepalived orphaned by a crash) was started by this test.
            pids = run("ip", "netns", "pids", namespace, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            run("ip", "netns", "del", namespace, check=False)
        self.namespaces.clear()


PROBE = r"""
import socket, sys, time
interval = float(sys.argv[1])
while True:
    started = time.monotonic()
    try:
        with socket.create_connection((sys.argv[2], 80), timeout=0.25) as sock:
            sock.settimeout(0.5)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        via = data.split(b'"connection": "', 1)[1].split(b":", 1)[0].decode()
        print(f"ok {started:.4f} {via}", flush=True)
    except Exception as exc:
        print(f"fail {started:.4f} {type(exc).__name__}", flush=True)
    time.sleep(max(0.0, interval - (time.monotonic() - started)))
"""


class Prober:
    """New connections to the VIP every ``interval`` from the client namespace; each line says
    when it was tried and which appliance (by its address toward the back ends) served it."""

    def __init__(self, topology: Topology, interval: float) -> None:
        self.output = topology.workdir / f"probe-{time.monotonic_ns()}.log"
        self.process = topology.spawn(
            "cl", [sys.executable, "-c", PROBE, str(interval), VIP], self.output
        )

    def lines(self) -> list[tuple[str, float, str]]:
        found = []
        for line in self.output.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] in ("ok", "fail"):
                found.append((parts[0], float(parts[1]), parts[2]))
        return found

    def first_served_by(self, address: str, after: float, timeout: float = 15) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for outcome, started, via in self.lines():
                if outcome == "ok" and via == address and started >= after:
                    return started
            time.sleep(0.05)
        raise AssertionError(f"no connection served by {address} within {timeout} s")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=5)


def wait_for(condition: Any, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)
