"""nginx as a proxy: http{} for L7, the stream module for L4; a reload is SIGHUP to the master."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from bench import nginxconf, tools
from bench.net import LOOPBACK
from bench.procs import Managed
from bench.proxies.base import Proxy
from bench.services import Server, Service

_PROXY_HTTP = (
    # keep-alive to the back ends, as Passerelle's pool and HAProxy's server reuse do
    "proxy_http_version 1.1;\n"
    'proxy_set_header Connection "";\n'
    "proxy_set_header Host $host;\n"
    "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
    "proxy_set_header X-Forwarded-Proto $scheme;\n"
    # stream large bodies through memory like the others rather than spooling them to disk
    "proxy_max_temp_file_size 0;\n"
)


def _upstream(name: str, servers: tuple[Server, ...], http: bool, sticky: bool = False) -> str:
    body = "".join(f"  server {s.address}:{s.port};\n" for s in servers)
    if sticky:
        # nginx open source has no persistence table; a hash of the address is its equivalent
        body = "  hash $remote_addr consistent;\n" + body
    if http:
        # a small idle cache collapses at 200 clients (it reconnects all the time)
        body += "  keepalive 1024;\n  keepalive_requests 1000000;\n  keepalive_timeout 660s;\n"
    return f"upstream {name} {{\n{body}}}\n"


def _http_server(
    service: Service, port: int, upstream: str, default: bool = False, name: str = ""
) -> str:
    listen = f"{LOOPBACK}:{port}" + (" default_server" if default else "")
    server_name = f"  server_name {name};\n" if name else ""
    tls = ""
    if service.offload is not None:
        listen += " ssl"
        tls = (
            f"  ssl_certificate {service.offload.cert_path};\n"
            f"  ssl_certificate_key {service.offload.key_path};\n"
            # nginx 1.22 leaves TLS 1.3 out unless asked (it is in the default from 1.23.4):
            # without this it negotiated TLS 1.2 where HAProxy and Passerelle speak TLS 1.3
            "  ssl_protocols TLSv1.2 TLSv1.3;\n"
        )
    scheme = "https" if service.reencrypt else "http"
    return (
        f"server {{\n  listen {listen};\n{server_name}{tls}"
        f"  location / {{ proxy_pass {scheme}://{upstream}; }}\n}}\n"
    )


def _http(service: Service, port: int) -> str:
    if not service.switch_host:
        return _upstream(service.name, service.servers, http=True) + _http_server(
            service, port, service.name
        )
    app, other = f"{service.name}_app", f"{service.name}_other"
    return (
        _upstream(app, service.servers, http=True, sticky=True)
        + _upstream(other, service.servers[:1], http=True)
        + _http_server(service, port, other, default=True)
        + _http_server(service, port, app, name=service.switch_host)
    )


def _stream(service: Service, port: int) -> str:
    return _upstream(service.name, service.servers, http=False) + (
        f"server {{\n  listen {LOOPBACK}:{port};\n  proxy_pass {service.name};\n}}\n"
    )


def configuration(
    services: list[Service], ports: dict[str, int], prefix: Path, workers: int
) -> str:
    http = [s for s in services if s.mode == "http"]
    stream = [s for s in services if s.mode == "tcp"]
    modules = [tools.stream_module() or "ngx_stream_module.so"] if stream else []
    text = nginxconf.main_block(prefix, workers, modules)
    if http:
        text += (
            "http {\n"
            + nginxconf.http_common(prefix)
            + _PROXY_HTTP
            + "".join(_http(s, ports[s.name]) for s in http)
            + "}\n"
        )
    if stream:
        text += "stream {\n" + "".join(_stream(s, ports[s.name]) for s in stream) + "}\n"
    return text


class Nginx(Proxy):
    product = "nginx"

    def _write_config(self) -> Path:
        nginxconf.prepare(self.workdir)
        path = self.workdir / "nginx.conf"
        path.write_text(
            configuration(self.services, self.ports, self.workdir, self.placement.workers)
        )
        return path

    def launch(self) -> None:
        process = Managed(
            self.product,
            nginxconf.argv(self.workdir, self._write_config()),
            self.placement.proxy_cpus,
            self.workdir / "stdout.log",
        )
        self.processes = [process.start()]

    def reconfigure(self, service: Service) -> None:
        self.replace_service(service)
        self._write_config()
        os.kill(self.processes[0].pid, signal.SIGHUP)
