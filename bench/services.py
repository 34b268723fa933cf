"""What every proxy must offer for a scenario, written once and translated into each product's
configuration, so that the three are configured equivalently by construction."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from passerelle.engine.tls.certificates import make_self_signed

SWITCH_HOST = "app.bench.test"


@dataclass(frozen=True)
class Certificate:
    name: str
    key_type: str  # "rsa-2048" or "ecdsa-p256"
    cert_pem: str
    key_pem: str
    cert_path: Path
    key_path: Path
    combined_path: Path  # certificate then key, the way HAProxy reads them


def make_certificate(folder: Path, name: str, key_type: str) -> Certificate:
    cert_pem, key_pem = make_self_signed(
        "bench.test", ["bench.test", SWITCH_HOST, "127.0.0.1"], key_type=key_type
    )
    paths = [folder / f"{name}.crt", folder / f"{name}.key", folder / f"{name}.pem"]
    for path, text in zip(paths, (cert_pem, key_pem, cert_pem + key_pem), strict=True):
        path.write_text(text)
        # nginx workers drop root privileges and must still read the files
        os.chmod(path, 0o644)
    return Certificate(name, key_type, cert_pem, key_pem, *paths)


@dataclass(frozen=True)
class Server:
    address: str
    port: int


@dataclass(frozen=True)
class Service:
    """One listener of one proxy.

    ``switch_host``: requests whose Host is this name go to a SubVS/backend over ``servers``
    with source-IP persistence; any other Host goes to the first server alone.
    """

    name: str
    mode: Literal["http", "tcp"]
    servers: tuple[Server, ...]
    offload: Certificate | None = None
    reencrypt: bool = False
    switch_host: str | None = None

    def with_servers(self, servers: tuple[Server, ...]) -> Service:
        return replace(self, servers=servers)
