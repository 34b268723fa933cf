"""The Skype for Business reference deployment (SFB-REFERENCE.md), laid out on loopback.

Ports keep their meaning with a prefix so that nothing needs root: 443 -> 10443, 4443 -> 14443,
80 -> 10080, 8080 -> 18080, 5061 -> 15061. Addresses: the reverse proxy VIP on 127.0.1.10, the
internal load balancer VIP on 127.0.1.20, front ends on 127.0.2.11-13, Office Online Server on
127.0.2.21-22. Names follow the example domain contoso.com.
"""

from __future__ import annotations

import functools
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from passerelle.demo.backends import SampleServer, TcpPort
from passerelle.engine.tls.certificates import Authority, write_pem_files

HTTPS, HTTPS_EXTERNAL, HTTP, HTTP_EXTERNAL, SIP_TLS = 10443, 14443, 10080, 18080, 15061

RP_VIP = "127.0.1.10"
HLB_VIP = "127.0.1.20"
FRONT_ENDS = ["127.0.2.11", "127.0.2.12", "127.0.2.13"]
OFFICE_ONLINE = ["127.0.2.21", "127.0.2.22"]
EXTERNAL_WEB_NAMES = [
    "webext.contoso.com",
    "meet.contoso.com",
    "dialin.contoso.com",
    "lyncdiscover.contoso.com",
]
OOS_NAME = "owa.contoso.com"
IDLE_TIMEOUT = 1800.0  # Microsoft's TCP idle timeout for Skype for Business web services


@dataclass
class Layout:
    """Where everything listens; tests shift ports to run beside each other."""

    rp_vip: str = RP_VIP
    hlb_vip: str = HLB_VIP
    front_ends: list[str] = field(default_factory=lambda: list(FRONT_ENDS))
    office_online: list[str] = field(default_factory=lambda: list(OFFICE_ONLINE))
    https: int = HTTPS
    https_external: int = HTTPS_EXTERNAL
    http: int = HTTP
    http_external: int = HTTP_EXTERNAL
    sip_tls: int = SIP_TLS
    health_interval: float = 5.0
    health_timeout: float = 2.0
    idle_timeout: float = IDLE_TIMEOUT


@dataclass
class Certificates:
    authority: Authority
    edge: tuple[str, str]  # the public SAN certificate of the reverse proxy
    internal: dict[str, tuple[str, str]]  # per server address: internal-CA certificate

    @classmethod
    def create(cls, layout: Layout) -> Certificates:
        authority = Authority.create("Contoso Demo Root CA")
        edge = authority.issue("webext.contoso.com", [*EXTERNAL_WEB_NAMES, OOS_NAME])
        internal = {
            address: authority.issue(f"server-{address}", ["pool.contoso.local"], [address])
            for address in [*layout.front_ends, *layout.office_online, layout.hlb_vip]
        }
        return cls(authority, edge, internal)

    def server_context(self, address: str) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert_pem, key_pem = self.internal[address]
        directory = Path(_scratch()) / address
        cert_path, key_path = write_pem_files(directory, "server", cert_pem, key_pem)
        context.load_cert_chain(cert_path, key_path)
        return context

    def write(self, directory: Path) -> Path:
        """Write the CA certificate for clients (curl --cacert); returns its path."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "contoso-demo-ca.pem"
        path.write_text(self.authority.cert_pem)
        return path


@functools.cache
def _scratch() -> str:
    """Where the sample servers' key files live (ssl loads keys from files only)."""
    return tempfile.mkdtemp(prefix="passerelle-demo-")


def _servers(addresses: list[str], port: int) -> list[dict[str, Any]]:
    return [{"address": a, "port": port} for a in addresses]


def reference_config(layout: Layout, certs: Certificates) -> dict[str, Any]:
    """The whole reference deployment as one configuration (the store/API/file schema)."""
    sip_check = {
        "type": "tcp",
        "port": layout.sip_tls,
        "interval": layout.health_interval,
        "timeout": layout.health_timeout,
    }
    hlb_common = {
        "address": layout.hlb_vip,
        "protocol": "tcp",
        "mode": "l4",
        "persistence": {"mode": "source_ip", "timeout": layout.idle_timeout},
        "health_check": sip_check,
        "idle_timeout": layout.idle_timeout,
    }
    https_check = {
        "type": "https",
        "path": "/",
        "interval": layout.health_interval,
        "timeout": layout.health_timeout,
    }
    return {
        "certificates": [
            {
                "name": "contoso-edge",
                "cert_pem": certs.edge[0],
                "key_pem": certs.edge[1],
                "chain_pem": certs.authority.cert_pem,
            }
        ],
        "virtual_services": [
            {
                "name": "sfb-fe-443",
                "ports": [layout.https],
                "real_servers": _servers(layout.front_ends, layout.https),
                **hlb_common,
            },
            {
                "name": "sfb-fe-80",
                "ports": [layout.http],
                "real_servers": _servers(layout.front_ends, layout.http),
                **hlb_common,
            },
            {
                "name": "sfb-fe-4443",
                "ports": [layout.https_external],
                "real_servers": _servers(layout.front_ends, layout.https_external),
                **hlb_common,
            },
            {
                "name": "sfb-reverse-proxy",
                "address": layout.rp_vip,
                "ports": [layout.https],
                "mode": "http",
                "tls": {"certificates": ["contoso-edge"], "cipher_set": "best-practices"},
                "idle_timeout": layout.idle_timeout,
                "subvs": [
                    {
                        "name": "fe-external-web",
                        "rules": [{"host": EXTERNAL_WEB_NAMES}],
                        "real_servers": [
                            {"address": layout.hlb_vip, "port": layout.https_external}
                        ],
                        "health_check": https_check,
                        "reencrypt": {"enabled": True, "sni": "host"},
                    },
                    {
                        "name": "office-online",
                        "rules": [{"host": [OOS_NAME]}],
                        "real_servers": _servers(layout.office_online, layout.https),
                        "persistence": {"mode": "source_ip", "timeout": 3600},
                        "health_check": https_check,
                        "reencrypt": {"enabled": True, "sni": "host"},
                    },
                ],
            },
            {
                "name": "sfb-reverse-proxy-http",
                "address": layout.rp_vip,
                "ports": [layout.http],
                "mode": "http",
                "idle_timeout": layout.idle_timeout,
                "real_servers": _servers(layout.front_ends, layout.http_external),
                "health_check": sip_check,
            },
        ],
    }


@dataclass
class SampleDeployment:
    """The sample front ends and Office Online servers, each answering with its own name."""

    layout: Layout
    certs: Certificates
    running: list[SampleServer | TcpPort] = field(default_factory=list)

    def start(self) -> SampleDeployment:
        lay = self.layout
        for i, address in enumerate(lay.front_ends, 1):
            tls = self.certs.server_context(address)
            self.running += [
                SampleServer(f"fe{i}-{lay.https}", address, lay.https, tls=tls).start(),
                SampleServer(
                    f"fe{i}-{lay.https_external}", address, lay.https_external, tls=tls
                ).start(),
                SampleServer(f"fe{i}-{lay.http}", address, lay.http).start(),
                SampleServer(f"fe{i}-{lay.http_external}", address, lay.http_external).start(),
                TcpPort(address, lay.sip_tls).start(),
            ]
        for i, address in enumerate(lay.office_online, 1):
            tls = self.certs.server_context(address)
            self.running.append(SampleServer(f"oos{i}", address, lay.https, tls=tls).start())
        return self

    def find(self, name: str) -> SampleServer:
        for server in self.running:
            if isinstance(server, SampleServer) and server.name == name:
                return server
        raise KeyError(name)

    def sip_port(self, address: str) -> TcpPort:
        for server in self.running:
            if isinstance(server, TcpPort) and server.address == address:
                return server
        raise KeyError(address)

    def stop(self) -> None:
        for server in self.running:
            server.stop()
        self.running.clear()
