"""Logging in to vCenter or ESXi, with failures turned into what the user should change."""

from __future__ import annotations

import contextlib
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from passerelle.provisioning.errors import DeployError


@dataclass(frozen=True)
class ServerAddress:
    host: str
    port: int

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_server(value: str) -> ServerAddress:
    """--server as HOST, HOST:PORT or https://HOST[:PORT][/sdk]."""
    parsed = urlsplit(value if "//" in value else f"//{value}")
    if parsed.scheme not in ("", "https") or not parsed.hostname:
        raise DeployError(f"--server {value!r}: give a host name, HOST:PORT or https://HOST")
    try:
        port = parsed.port or 443
    except ValueError as exc:
        raise DeployError(f"--server {value!r}: bad port") from exc
    return ServerAddress(parsed.hostname, port)


def connect(server: ServerAddress, user: str, password: str, insecure: bool) -> vim.ServiceInstance:
    try:
        return SmartConnect(
            host=server.host,
            port=server.port,
            user=user,
            pwd=password,
            disableSslCertValidation=insecure,
            connectionPoolTimeout=-1,
        )
    except vim.fault.InvalidLogin as exc:
        raise DeployError(
            f"{server.authority} rejected the login of {user!r}: check --user and --password "
            "(or PASSERELLE_VSPHERE_PASSWORD)"
        ) from exc
    except ssl.SSLCertVerificationError as exc:
        raise DeployError(
            f"{server.authority}: its TLS certificate is not trusted ({exc.verify_message}); "
            "install its CA certificate or pass --insecure"
        ) from exc
    except socket.gaierror as exc:
        raise DeployError(f"--server {server.host}: name not found ({exc})") from exc
    except (ConnectionError, TimeoutError, ssl.SSLError) as exc:
        raise DeployError(
            f"cannot connect to {server.authority} ({exc}); check --server and that the "
            "vSphere API is reachable from here"
        ) from exc
    except vim.fault.HostConnectFault as exc:
        raise DeployError(f"{server.authority}: {exc.msg}") from exc


def disconnect(service: vim.ServiceInstance) -> None:
    with contextlib.suppress(Exception):
        Disconnect(service)
