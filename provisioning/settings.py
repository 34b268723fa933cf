"""What each appliance of a deployment is told at first boot, and how a deployment is named.

The appliance reads these keys from VMware guestinfo (extraConfig) or, on Hyper-V, from the
host-to-guest KVP pool; both carry the same key names.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import string
from dataclasses import dataclass, field

from passerelle.provisioning.errors import DeployError

GUESTINFO_PREFIX = "guestinfo.passerelle."
KEY_IP = GUESTINFO_PREFIX + "ip"
KEY_GATEWAY = GUESTINFO_PREFIX + "gateway"
KEY_DNS = GUESTINFO_PREFIX + "dns"
KEY_HOSTNAME = GUESTINFO_PREFIX + "hostname"
KEY_ADMIN_PASSWORD = GUESTINFO_PREFIX + "admin_password"

ADMIN_USER = "admin"
DEFAULT_ADDRESS = "192.168.1.101"
PAIR_SUFFIXES = ("a", "b")
MAX_NAME_LENGTH = 64
# Unambiguous characters only: the password may be read off a terminal and typed again.
PASSWORD_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")


@dataclass(frozen=True)
class ApplianceSettings:
    """First-boot settings of one appliance."""

    hostname: str
    admin_password: str
    ip: ipaddress.IPv4Interface | ipaddress.IPv6Interface | None = None
    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    dns: tuple[str, ...] = ()

    @property
    def address(self) -> str | None:
        """The management address the appliance will answer on, when one was given."""
        return str(self.ip.ip) if self.ip is not None else None

    def keys(self) -> dict[str, str]:
        """The guestinfo/KVP keys and values; unset settings are left out, not blank."""
        values = {KEY_HOSTNAME: self.hostname, KEY_ADMIN_PASSWORD: self.admin_password}
        if self.ip is not None:
            values[KEY_IP] = self.ip.with_prefixlen
        if self.gateway is not None:
            values[KEY_GATEWAY] = str(self.gateway)
        if self.dns:
            values[KEY_DNS] = ",".join(self.dns)
        return values


@dataclass(frozen=True)
class ApplianceSpec:
    """One VM to deploy: its name on the hypervisor and its first-boot settings."""

    name: str
    settings: ApplianceSettings
    role: str = "single"  # "single", "primary" or "secondary"


@dataclass(frozen=True)
class DeploymentPlan:
    base_name: str
    appliances: tuple[ApplianceSpec, ...]
    password_generated: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def is_pair(self) -> bool:
        return len(self.appliances) == 2


def generate_password(length: int = 20) -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


def hostname_for(vm_name: str) -> str:
    """A DNS label derived from the VM name (the VM name itself may hold any character)."""
    label = re.sub(r"[^a-z0-9-]+", "-", vm_name.lower()).strip("-")[:63].strip("-")
    return label or "passerelle"


def parse_interfaces(
    values: list[str], count: int
) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface | None]:
    """--ip values (each may itself be a comma list) as one interface per appliance."""
    items = [item.strip() for value in values for item in value.split(",") if item.strip()]
    if not items:
        return [None] * count
    if len(items) != count:
        what = "two addresses (one per appliance)" if count == 2 else "one address"
        raise DeployError(f"--ip: expected {what}, got {len(items)}: {', '.join(items)}")
    interfaces = []
    for item in items:
        if "/" not in item:
            raise DeployError(f"--ip {item}: give the prefix length too, e.g. {item}/24")
        try:
            interfaces.append(ipaddress.ip_interface(item))
        except ValueError as exc:
            raise DeployError(f"--ip {item}: not an address with prefix ({exc})") from exc
    if len({i.ip for i in interfaces}) != len(interfaces):
        raise DeployError("--ip: the two appliances need two different addresses")
    return interfaces


def parse_dns(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    servers = tuple(item.strip() for item in value.split(",") if item.strip())
    for server in servers:
        try:
            ipaddress.ip_address(server)
        except ValueError as exc:
            raise DeployError(f"--dns {server}: not an IP address") from exc
    return servers


def plan_deployment(
    name: str,
    pair: bool,
    ips: list[str],
    gateway: str | None,
    dns: str | None,
    admin_password: str | None,
) -> DeploymentPlan:
    """Validate the user's choices and name the VMs: NAME for one appliance, NAME-a/NAME-b."""
    if not name or len(name) > MAX_NAME_LENGTH or any(ord(c) < 32 for c in name):
        raise DeployError(f"--name: give a VM name of 1 to {MAX_NAME_LENGTH} printable characters")
    count = 2 if pair else 1
    interfaces = parse_interfaces(ips, count)
    if pair and interfaces[0] is None:
        raise DeployError(
            "--ip: an HA pair needs two addresses (e.g. --ip 10.0.0.11/24,10.0.0.12/24); "
            f"without them both appliances would come up on the default {DEFAULT_ADDRESS}"
        )
    gateway_address = None
    if gateway:
        try:
            gateway_address = ipaddress.ip_address(gateway)
        except ValueError as exc:
            raise DeployError(f"--gateway {gateway}: not an IP address") from exc
        for interface in interfaces:
            if interface is not None and gateway_address not in interface.network:
                raise DeployError(
                    f"--gateway {gateway} is outside {interface.network} (from --ip "
                    f"{interface.with_prefixlen}); fix the prefix length or the gateway"
                )
    password = admin_password or generate_password()
    if len(password) < 8:
        raise DeployError("--admin-password: use at least 8 characters")
    names = [f"{name}-{suffix}" for suffix in PAIR_SUFFIXES] if pair else [name]
    roles = ["primary", "secondary"] if pair else ["single"]
    appliances = tuple(
        ApplianceSpec(
            name=vm_name,
            role=role,
            settings=ApplianceSettings(
                hostname=hostname_for(vm_name),
                admin_password=password,
                ip=interface,
                gateway=gateway_address,
                dns=parse_dns(dns),
            ),
        )
        for vm_name, role, interface in zip(names, roles, interfaces, strict=True)
    )
    return DeploymentPlan(
        base_name=name, appliances=appliances, password_generated=admin_password is None
    )
