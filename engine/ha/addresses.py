"""Which of this appliance's addresses faces the peer, and on which interface it lives."""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess


class AddressError(ValueError):
    """The address or interface cannot be found; the message says which."""


def resolve(host: str) -> str:
    """An IP address for ``host`` (an address already, or a name)."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    try:
        return str(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0])
    except (OSError, IndexError) as exc:
        raise AddressError(f"cannot resolve {host!r}: {exc}") from None


def source_toward(peer: str) -> str:
    """The address the kernel would send from to reach ``peer`` (no packet is sent)."""
    family = socket.AF_INET6 if ipaddress.ip_address(peer).version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((peer, 9))  # UDP connect only picks a route
        except OSError as exc:
            raise AddressError(f"no route to the peer {peer}: {exc.strerror or exc}") from None
        return str(probe.getsockname()[0])


def interface_of(address: str) -> str:
    """The interface that carries ``address`` (from ``ip -json address``)."""
    try:
        output = subprocess.run(
            ["ip", "-json", "address", "show"], capture_output=True, check=True, timeout=5
        ).stdout
        links = json.loads(output)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise AddressError(f"cannot list the interfaces: {exc}") from None
    for link in links:
        for info in link.get("addr_info", []):
            if info.get("local") == address:
                return str(link["ifname"])
    raise AddressError(f"no interface carries {address}")
