"""Turn hypervisor metadata into settings to apply: each bad value is refused with its reason
(and the default used instead), so a typo in a deployment still gives a reachable appliance."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from passerelle.firstboot.metadata import Metadata
from passerelle.firstboot.settings import DEFAULT_HOSTNAME, NetworkSettings
from passerelle.firstboot.validate import (
    Invalid,
    IPAddress,
    check_password,
    parse_address,
    parse_dns,
    parse_gateway,
    parse_hostname,
)

log = logging.getLogger("passerelle.firstboot")


@dataclass(frozen=True)
class Choice:
    settings: NetworkSettings
    hostname: str
    admin_password: str | None  # None: generate one
    source: str
    notes: tuple[str, ...] = field(default_factory=tuple)


def choose(metadata: Metadata | None) -> Choice:
    if metadata is None:
        return Choice(NetworkSettings.default(), DEFAULT_HOSTNAME, None, "default")
    notes: list[str] = []

    def refuse(key: str, value: str, exc: Invalid) -> None:
        shown = "(hidden)" if key == "admin_password" else repr(value)
        note = f"{key} {shown} from {metadata.source} refused: {exc}"
        log.warning("%s", note)
        notes.append(note)

    settings = NetworkSettings.default()
    source = "default"
    ip = metadata.get("ip")
    if ip:
        try:
            settings = NetworkSettings(parse_address(ip, metadata.get("netmask")))
            source = metadata.source
        except Invalid as exc:
            refuse("ip", ip, exc)
            log.warning("using the default address %s", settings.address)
    gateway: IPAddress | None = None
    text = metadata.get("gateway")
    if text:
        try:
            gateway = parse_gateway(text, settings.address)
        except Invalid as exc:
            refuse("gateway", text, exc)
    dns = metadata.values.get("dns")
    servers: tuple[IPAddress, ...] = ()
    if dns:
        try:
            servers = parse_dns(dns)
        except Invalid as exc:
            refuse("dns", metadata.get("dns") or "", exc)
    settings = NetworkSettings(settings.address, gateway, servers)

    hostname = DEFAULT_HOSTNAME
    text = metadata.get("hostname")
    if text:
        try:
            hostname = parse_hostname(text)
        except Invalid as exc:
            refuse("hostname", text, exc)
    password = metadata.values.get("admin_password")
    admin_password: str | None = None
    if isinstance(password, str):
        try:
            admin_password = check_password(password)
        except Invalid as exc:
            refuse("admin_password", password, exc)
            log.warning("a password is generated instead and shown on the console")
    return Choice(settings, hostname, admin_password, source, tuple(notes))
