"""The real servers: one nginx on the load generator's CPUs answering a tiny body on several
loopback ports (plain and TLS) and serving a large file for the bulk scenario. nginx is fast
enough that the proxies, not the back ends, are what is measured."""

from __future__ import annotations

import os
from pathlib import Path

from bench import nginxconf
from bench.net import LOOPBACK, free_port, wait_http, wait_listening
from bench.placement import Placement
from bench.procs import Managed
from bench.services import Certificate, Server

BIG_PATH = "/big.bin"
BIG_BYTES = 100 * 1000 * 1000
PLAIN_COUNT = 4  # three in the pool, one spare that a configuration change switches to


class BackEnds:
    def __init__(self, workdir: Path, placement: Placement, certificate: Certificate) -> None:
        self.prefix = workdir / "backends"
        self.placement = placement
        self.certificate = certificate
        self.plain = tuple(Server(LOOPBACK, free_port()) for _ in range(PLAIN_COUNT))
        self.tls = tuple(Server(LOOPBACK, free_port()) for _ in range(3))
        self.process: Managed | None = None

    @property
    def pool(self) -> tuple[Server, ...]:
        return self.plain[:3]

    @property
    def spare(self) -> Server:
        return self.plain[3]

    @staticmethod
    def body(index: int) -> bytes:
        return f"be{index}".encode()

    def _server_block(self, index: int, listen: str, tls: bool) -> str:
        ssl = (
            f"  ssl_certificate {self.certificate.cert_path};\n"
            f"  ssl_certificate_key {self.certificate.key_path};\n"
            if tls
            else ""
        )
        return (
            "server {\n"
            f"  listen {listen}{' ssl' if tls else ''};\n"
            f"{ssl}"
            f'  location / {{ return 200 "{self.body(index).decode()}"; }}\n'
            f"  location = {BIG_PATH} {{ root {self.prefix / 'www'}; }}\n"
            "}\n"
        )

    def _config(self) -> str:
        servers = [
            self._server_block(i, f"{s.address}:{s.port}", tls=False)
            for i, s in enumerate(self.plain)
        ] + [
            self._server_block(i, f"{s.address}:{s.port}", tls=True) for i, s in enumerate(self.tls)
        ]
        return (
            nginxconf.main_block(self.prefix, self.placement.workers)
            + "http {\n"
            + nginxconf.http_common(self.prefix)
            + "".join(servers)
            + "}\n"
        )

    def start(self) -> BackEnds:
        nginxconf.prepare(self.prefix)
        www = self.prefix / "www"
        www.mkdir(exist_ok=True)
        www.chmod(0o755)
        big = www / BIG_PATH.lstrip("/")
        # sparse: served from the page cache of holes, no disk traffic and no disk space
        with big.open("wb") as f:
            f.truncate(BIG_BYTES)
        os.chmod(big, 0o644)
        conf = self.prefix / "nginx.conf"
        conf.write_text(self._config())
        self.process = Managed(
            "back ends",
            nginxconf.argv(self.prefix, conf),
            self.placement.load_cpus,
            self.prefix / "stdout.log",
        ).start()
        for server in self.plain:
            wait_http(server.port)
        for server in self.tls:
            wait_listening(server.port)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
