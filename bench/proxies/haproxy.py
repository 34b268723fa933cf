"""HAProxy in the foreground (-db) with a configuration in the work folder; a reload starts a
new process with -sf, the way HAProxy hands over listeners without dropping connections."""

from __future__ import annotations

import subprocess

from bench.net import LOOPBACK
from bench.procs import Managed
from bench.proxies.base import Proxy
from bench.services import Server, Service

MAXCONN = 12000


def _servers(service: Service, servers: tuple[Server, ...]) -> str:
    tls = " ssl verify none" if service.reencrypt else ""
    return "".join(f"  server s{i} {s.address}:{s.port}{tls}\n" for i, s in enumerate(servers))


def _backend(name: str, service: Service, servers: tuple[Server, ...], sticky: bool) -> str:
    stick = "  stick-table type ip size 1m expire 1h\n  stick on src\n" if sticky else ""
    return (
        f"backend {name}\n  mode {service.mode}\n  balance roundrobin\n{stick}"
        f"{_servers(service, servers)}"
    )


def _section(service: Service, port: int) -> str:
    bind = f"  bind {LOOPBACK}:{port}"
    if service.offload is not None:
        bind += f" ssl crt {service.offload.combined_path} alpn http/1.1"
    lines = [f"frontend {service.name}", f"  mode {service.mode}", bind]
    if service.mode == "http":
        proto = "https" if service.offload is not None else "http"
        lines += ["  option forwardfor", f"  http-request set-header X-Forwarded-Proto {proto}"]
        # A connection closed before its first request is closed in silence, as Passerelle and
        # nginx do; by default HAProxy answers it with a 400 (the handshake client's connections)
        lines.append("  option http-ignore-probes")
    backends: list[str] = []
    if service.switch_host:
        lines += [
            f"  acl switched hdr(host) -i {service.switch_host}",
            f"  use_backend {service.name}_app if switched",
            f"  default_backend {service.name}_other",
        ]
        backends += [
            _backend(f"{service.name}_app", service, service.servers, sticky=True),
            _backend(f"{service.name}_other", service, service.servers[:1], sticky=False),
        ]
    else:
        lines.append(f"  default_backend {service.name}")
        backends.append(_backend(service.name, service, service.servers, sticky=False))
    return "\n".join(lines) + "\n" + "".join(backends)


def configuration(services: list[Service], ports: dict[str, int], threads: int) -> str:
    return (
        "global\n"
        f"  nbthread {threads}\n"
        f"  maxconn {MAXCONN}\n"
        # it asks for 2 descriptors per connection; the hard limit here (about 20,000) is
        # enough for the 10,000 idle clients as server connections are pooled
        "  no strict-limits\n"
        "defaults\n"
        f"  maxconn {MAXCONN}\n"
        "  timeout connect 5s\n"
        "  timeout client 660s\n"
        "  timeout server 660s\n"
        "  timeout http-request 30s\n"
        "  timeout http-keep-alive 660s\n" + "".join(_section(s, ports[s.name]) for s in services)
    )


class HAProxy(Proxy):
    product = "HAProxy"

    def _write_config(self) -> str:
        path = self.workdir / "haproxy.cfg"
        path.write_text(configuration(self.services, self.ports, self.placement.workers))
        return str(path)

    def _spawn(self, *extra: str) -> Managed:
        process = Managed(
            self.product,
            ["haproxy", "-db", "-f", self._write_config(), *extra],
            self.placement.proxy_cpus,
            self.workdir / "haproxy.log",
        )
        self.processes.append(process.start())
        return process

    def launch(self) -> None:
        self._spawn()

    def reconfigure(self, service: Service) -> None:
        self.replace_service(service)
        old = [str(p.pid) for p in self.processes if p.alive()]
        self._spawn("-sf", *old)

    def settle(self, timeout: float = 10.0) -> None:
        # the old process exits by itself once its last connection is gone
        current = self.processes[-1]
        for process in self.processes[:-1]:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.stop()
        self.processes = [current]
