"""Finding a virtual service, SubVS or real server inside configuration data (JSON dicts)."""

from __future__ import annotations

import ipaddress
from typing import Any

from passerelle.engine.manage.api.errors import not_found

Data = dict[str, Any]


def service_index(config: Data, name: str) -> int:
    for i, vs in enumerate(config["virtual_services"]):
        if vs["name"] == name:
            return i
    raise not_found(f"virtual service named {name!r}")


def service(config: Data, name: str) -> Data:
    return config["virtual_services"][service_index(config, name)]


def subvs_index(vs: Data, name: str) -> int:
    for i, sub in enumerate(vs["subvs"]):
        if sub["name"] == name:
            return i
    raise not_found(f"SubVS named {name!r} in virtual service {vs['name']!r}")


def pool(config: Data, name: str, sub: str | None) -> Data:
    """The pool that holds real servers: the virtual service itself or one of its SubVSs."""
    vs = service(config, name)
    return vs if sub is None else vs["subvs"][subvs_index(vs, sub)]


def server_key(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def parse_server_key(text: str) -> tuple[str, int] | None:
    """``10.0.0.5:443`` or ``[2001:db8::5]:443`` in canonical form; None if not such a key."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or len(port) > 5:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host)), int(port)
    except ValueError:
        return None


def server_index(pool: Data, key: str) -> int:
    wanted = parse_server_key(key)
    if wanted is not None:
        for i, server in enumerate(pool["real_servers"]):
            if (server["address"], server["port"]) == wanted:
                return i
    raise not_found(f"real server {key!r} in {pool['name']!r}")
