"""The appliance's management network: one address, an optional gateway, DNS servers."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from passerelle.firstboot.validate import IPAddress, IPInterface

DEFAULT_ADDRESS = "192.168.1.101/24"
DEFAULT_HOSTNAME = "passerelle"


@dataclass(frozen=True)
class NetworkSettings:
    address: IPInterface
    gateway: IPAddress | None = None
    dns: tuple[IPAddress, ...] = field(default_factory=tuple)

    @classmethod
    def default(cls) -> NetworkSettings:
        return cls(ipaddress.ip_interface(DEFAULT_ADDRESS))

    @property
    def url(self) -> str:
        host = self.address.ip
        return f"https://[{host}]/" if host.version == 6 else f"https://{host}/"

    def describe(self) -> str:
        parts = [str(self.address)]
        parts.append(f"gateway {self.gateway}" if self.gateway else "no gateway")
        parts.append("DNS " + " ".join(map(str, self.dns)) if self.dns else "no DNS")
        return ", ".join(parts)

    def to_json(self) -> dict[str, object]:
        return {
            "address": str(self.address),
            "gateway": str(self.gateway) if self.gateway else None,
            "dns": [str(server) for server in self.dns],
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> NetworkSettings:
        gateway = data.get("gateway")
        return cls(
            address=ipaddress.ip_interface(str(data["address"])),
            gateway=ipaddress.ip_address(str(gateway)) if gateway else None,
            dns=tuple(ipaddress.ip_address(str(s)) for s in data.get("dns") or ()),  # type: ignore[union-attr]
        )
