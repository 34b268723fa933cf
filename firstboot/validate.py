"""Checks on everything an administrator or a hypervisor hands us, each refusal with a reason.

Nothing is applied unless it passes here: a typo on the VM console must never cut the
appliance off its network.
"""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

# The management plane's rule for passwords (engine/manage/users.py); a test keeps them in step.
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_DNS = 3  # what glibc's resolver uses (MAXNS)
HOST_NAME_MAX = 64  # the kernel's limit for the static hostname
MAX_NTP = 8
_LABEL = re.compile(r"^[a-z0-9-]+$")
_ZONE = re.compile(r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$")


class Invalid(ValueError):
    """A refused input; ``field`` names it, the message says what is wrong and how to fix it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_ip(text: str, field: str) -> IPAddress:
    text = text.strip()
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise Invalid(field, f"{text!r} is not an IPv4 or IPv6 address") from None


def parse_prefix(text: str, version: int = 4) -> int:
    """A prefix length from "24", "/24" or a dotted netmask such as "255.255.255.0"."""
    text = text.strip().lstrip("/")
    top = 32 if version == 4 else 128
    if text.isdigit():
        prefix = int(text)
        if not 1 <= prefix <= top:
            raise Invalid("netmask", f"the prefix length must be between 1 and {top}, not {text}")
        return prefix
    if version != 4:
        raise Invalid("netmask", f"an IPv6 prefix is a number from 1 to 128, not {text!r}")
    try:
        mask = int(ipaddress.IPv4Address(text))
    except ValueError:
        raise Invalid(
            "netmask", f"{text!r} is neither a netmask (255.255.255.0) nor a prefix length (24)"
        ) from None
    prefix = mask.bit_count()
    if mask != (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF:
        raise Invalid(
            "netmask",
            f"netmask {text} is not contiguous: its one-bits must all come first, "
            "as in 255.255.255.0",
        )
    if prefix == 0:
        raise Invalid("netmask", "netmask 0.0.0.0 leaves no network")
    return prefix


def parse_address(text: str, netmask: str | None = None) -> IPInterface:
    """The appliance's own address from "10.0.0.5/24", "10.0.0.5/255.255.255.0", or an address
    plus a separate ``netmask``."""
    text = text.strip()
    if not text:
        raise Invalid("ip", "an address is required, e.g. 192.168.1.101/24")
    host, slash, mask = text.partition("/")
    if not slash:
        if netmask is None or not netmask.strip():
            raise Invalid("ip", f"{text} has no prefix length; write it as {text}/24")
        mask = netmask
    address = parse_ip(host, "ip")
    prefix = parse_prefix(mask, address.version)
    interface = ipaddress.ip_interface(f"{address}/{prefix}")
    _check_host_address(interface)
    return interface


def _check_host_address(interface: IPInterface) -> None:
    address, network = interface.ip, interface.network
    if address.is_unspecified:
        raise Invalid("ip", f"{address} is the unspecified address")
    if address.is_loopback:
        raise Invalid("ip", f"{address} is a loopback address")
    if address.is_multicast:
        raise Invalid("ip", f"{address} is a multicast address")
    if address.is_link_local:
        raise Invalid("ip", f"{address} is a link-local address; give a routable one")
    if address.is_reserved:  # includes 255.255.255.255
        raise Invalid("ip", f"{address} is a reserved address")
    if address.version == 4 and network.prefixlen <= 30:
        if address == network.network_address:
            raise Invalid("ip", f"{address} is the network address of {network}")
        if address == network.broadcast_address:
            raise Invalid("ip", f"{address} is the broadcast address of {network}")


def parse_gateway(text: str, interface: IPInterface) -> IPAddress:
    gateway = parse_ip(text, "gateway")
    if gateway.version != interface.version:
        raise Invalid("gateway", f"gateway {gateway} is not the same IP version as {interface.ip}")
    if gateway.version == 6 and gateway.is_link_local:
        return gateway  # IPv6 routers are commonly reached by their link-local address
    network = interface.network
    if gateway not in network:
        raise Invalid(
            "gateway",
            f"gateway {gateway} is outside {network}; it must be on the appliance's subnet",
        )
    if gateway == interface.ip:
        raise Invalid("gateway", f"gateway {gateway} is the appliance's own address")
    edges = (network.network_address, network.broadcast_address)
    if gateway.version == 4 and network.prefixlen <= 30 and gateway in edges:
        raise Invalid(
            "gateway", f"gateway {gateway} is the network or broadcast address of {network}"
        )
    return gateway


def split_list(value: str | Iterable[str]) -> list[str]:
    """Items of "a, b c" or of a list, blanks dropped."""
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    return [str(item).strip() for item in items if str(item).strip()]


def parse_dns(value: str | Iterable[str]) -> tuple[IPAddress, ...]:
    servers: list[IPAddress] = []
    for item in split_list(value):
        server = parse_ip(item, "dns")
        if server.is_unspecified or server.is_multicast:
            raise Invalid("dns", f"{server} cannot be a DNS server")
        if server not in servers:
            servers.append(server)
    if len(servers) > MAX_DNS:
        raise Invalid("dns", f"at most {MAX_DNS} DNS servers, not {len(servers)}")
    return tuple(servers)


def parse_hostname(text: str) -> str:
    name = text.strip().rstrip(".").lower()
    if not name:
        raise Invalid("hostname", "a hostname is required, e.g. lb1 or lb1.example.com")
    if len(name) > HOST_NAME_MAX:
        raise Invalid("hostname", f"a hostname is at most {HOST_NAME_MAX} characters")
    for label in name.split("."):
        if not label:
            raise Invalid("hostname", "a hostname has no empty parts (two dots in a row)")
        if len(label) > 63:
            raise Invalid("hostname", f"{label[:20]}... is longer than 63 characters")
        if not _LABEL.match(label):
            raise Invalid(
                "hostname", f"{label!r}: only letters a-z, digits and hyphens are allowed"
            )
        if label.startswith("-") or label.endswith("-"):
            raise Invalid("hostname", f"{label!r} may not start or end with a hyphen")
    if name.replace(".", "").isdigit():
        raise Invalid("hostname", f"{name} looks like an address, not a name")
    if name == "localhost":
        raise Invalid("hostname", "localhost is reserved")
    return name


def parse_timezone(text: str) -> str:
    """A zone of the tz database as timedatectl takes it, e.g. Europe/Paris or UTC."""
    name = text.strip()
    if not name:
        raise Invalid("timezone", "a time zone is required, e.g. UTC or Europe/Paris")
    # the pattern also keeps ".." and absolute paths out of the zoneinfo lookup
    if name == "UTC" or (_ZONE.match(name) and name in zoneinfo.available_timezones()):
        return name
    raise Invalid("timezone", f"{name[:64]!r} is not a time zone of the tz database")


def parse_ntp_servers(value: str | Iterable[str]) -> tuple[str, ...]:
    """NTP servers by address or by name (names are checked as hostnames are)."""
    servers: list[str] = []
    for item in split_list(value):
        try:
            address = ipaddress.ip_address(item)
        except ValueError:
            try:
                server = parse_hostname(item)
            except Invalid as exc:
                raise Invalid("ntp_servers", f"NTP server {item[:64]!r}: {exc}") from None
        else:
            if address.is_unspecified or address.is_multicast:
                raise Invalid("ntp_servers", f"{address} cannot be an NTP server")
            server = str(address)
        if server not in servers:
            servers.append(server)
    if len(servers) > MAX_NTP:
        raise Invalid("ntp_servers", f"at most {MAX_NTP} NTP servers, not {len(servers)}")
    return tuple(servers)


def check_password(password: str, confirmation: str | None = None) -> str:
    if len(password) < MIN_PASSWORD:
        raise Invalid("admin_password", f"the password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise Invalid("admin_password", f"the password has at most {MAX_PASSWORD} characters")
    if not password.isprintable():
        raise Invalid("admin_password", "the password may not contain control characters")
    if password.strip() != password:
        raise Invalid("admin_password", "the password may not start or end with a space")
    if confirmation is not None and confirmation != password:
        raise Invalid("admin_password", "the two entries differ")
    return password
