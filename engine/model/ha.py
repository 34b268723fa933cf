"""The HA part of the model: one appliance's half of an active/standby pair.

Each appliance keeps its own ``ha`` section (its node letter, its own address, its interface),
so configuration replication copies everything except this section. Cross-field checks are
field validators, so an error names the exact field (``ha.peer_address``) like everywhere else.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

if TYPE_CHECKING:  # config.py imports this module
    from passerelle.engine.model.config import Config

Seconds = Annotated[float, Field(gt=0, le=3600)]

DEFAULT_PRIORITY = {"a": 150, "b": 100}  # a wins the first election; nopreempt keeps it stable
_INTERFACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@\-]{0,14}")
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_SECRET = re.compile(r"[\x21-\x7e]{16,256}")


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from exc


def _cidr(value: str) -> str:
    """``10.0.0.100/24`` as is; a bare address becomes a host route (``/32``, ``/128``)."""
    try:
        interface = ipaddress.ip_interface(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an address with a prefix such as /24") from None
    return str(interface)


SharedAddress = Annotated[str, AfterValidator(_cidr)]


class HASettings(BaseModel):
    """keepalived's VRRP instance and the peer's management API, as one appliance sees them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    node: Literal["a", "b"]
    local_address: str  # this appliance's own address on ``interface``; VRRP source
    peer_address: str  # the other appliance's address; unicast VRRP goes there only
    interface: str
    virtual_router_id: Annotated[int, Field(ge=1, le=255)] = 51
    priority: Annotated[int, Field(ge=1, le=254)] | None = None  # None: 150 for a, 100 for b
    preempt: bool = False  # off: a recovered node never takes the addresses back by itself
    # Shared by both nodes: signs replication requests and answers (HMAC) and, with VRRPv2,
    # keepalived's advertisements.
    auth_secret: str
    # VRRP advertisement period; a fraction of a second needs VRRPv3, which keepalived then uses
    advert_interval: Annotated[float, Field(ge=0.01, le=255)] = 1.0
    # CIDRs keepalived moves between the nodes; empty: every virtual service address, as /32
    # (or /128), which is enough for ARP on the interface's own subnet
    shared_addresses: list[SharedAddress] = Field(default_factory=list)
    peer_api_url: str | None = None  # https://PEER[:PORT]/api/v1; None: no replication
    peer_certificate_sha256: str | None = None  # the peer's management certificate, pinned
    check_interval: Seconds = 1.0  # how often keepalived asks whether the local engine serves
    check_retries: Annotated[int, Field(ge=1, le=100)] = 2  # failed checks before fault
    check_rise: Annotated[int, Field(ge=1, le=100)] = 2  # good checks before leaving fault
    sync_interval: Seconds = 1.0  # persistence push and replication reconciliation period

    _check_local = field_validator("local_address")(classmethod(lambda cls, v: _address(v)))

    @field_validator("peer_address")
    @classmethod
    def _peer(cls, v: str, info: ValidationInfo) -> str:
        peer = _address(v)
        local = info.data.get("local_address")
        if local is not None:
            if peer == local:
                raise ValueError("must differ from local_address")
            if ipaddress.ip_address(peer).version != ipaddress.ip_address(local).version:
                raise ValueError("must be of the same IP version as local_address")
        return peer

    @field_validator("interface")
    @classmethod
    def _interface(cls, v: str) -> str:
        if not _INTERFACE.fullmatch(v):
            raise ValueError("must be a network interface name (at most 15 characters)")
        return v

    @field_validator("auth_secret")
    @classmethod
    def _secret(cls, v: str) -> str:
        if not _SECRET.fullmatch(v):
            raise ValueError("must be 16 to 256 printable characters without spaces")
        return v

    @field_validator("advert_interval")
    @classmethod
    def _centiseconds(cls, v: float) -> float:
        # VRRPv3 counts in centiseconds; anything finer would be silently rounded by keepalived.
        if abs(v * 100 - round(v * 100)) > 1e-6:
            raise ValueError("must be a whole number of hundredths of a second")
        return v

    @field_validator("shared_addresses")
    @classmethod
    def _distinct(cls, v: list[str], info: ValidationInfo) -> list[str]:
        addresses = [str(ipaddress.ip_interface(c).ip) for c in v]
        if len(set(addresses)) != len(addresses):
            raise ValueError("an address is listed twice")
        local = info.data.get("local_address")
        if local in addresses:
            raise ValueError(f"{local} is this appliance's own address, not a shared one")
        return v

    @field_validator("peer_api_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"https://[^\s/?#]+(/[^\s?#]*)?", v):
            raise ValueError("must be an https:// URL such as https://10.0.0.12/api/v1")
        return v.rstrip("/") if v else v

    @field_validator("peer_certificate_sha256")
    @classmethod
    def _fingerprint(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.replace(":", "").lower()
        if not _FINGERPRINT.fullmatch(v):
            raise ValueError("must be a SHA-256 fingerprint (64 hexadecimal digits)")
        return v

    @property
    def effective_priority(self) -> int:
        return self.priority if self.priority is not None else DEFAULT_PRIORITY[self.node]

    @property
    def vrrp_version(self) -> int:
        """3 when the interval is a fraction of a second or the addresses are IPv6."""
        fractional = self.advert_interval != int(self.advert_interval)
        ipv6 = ipaddress.ip_address(self.local_address).version == 6
        return 3 if fractional or ipv6 else 2


def keep_local_ha(incoming: Config, current: Config) -> Config:
    """A whole-configuration import or a rollback never changes the HA settings: they describe
    this appliance's own half of a pair, which only pairing and the HA API may change (a backup
    restored on the other node must not bring the wrong node's settings)."""
    if incoming.ha == current.ha:
        return incoming
    return incoming.model_copy(update={"ha": current.ha})
