"""VMware: guestinfo variables (``guestinfo.passerelle.ip`` ...) and the vApp OVF environment
(``guestinfo.ovfEnv``), both read through ``vmware-rpctool`` from open-vm-tools."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from xml.etree import ElementTree

from passerelle.firstboot.metadata import KEYS, SourceError
from passerelle.firstboot.paths import Paths

GUESTINFO = "guestinfo.passerelle."
OVF_ENV = "http://schemas.dmtf.org/ovf/environment/1"
RPC_TIMEOUT = 10.0

# An RPC query such as 'info-get guestinfo.ovfEnv' -> its answer, None when unset.
Rpc = Callable[[str], str | None]


def is_vmware(paths: Paths) -> bool:
    try:
        vendor = (paths.dmi_dir / "sys_vendor").read_text(errors="replace")
    except OSError:
        return False
    return "vmware" in vendor.lower()


def rpctool(query: str) -> str | None:
    try:
        done = subprocess.run(
            ["vmware-rpctool", query],
            capture_output=True,
            text=True,
            timeout=RPC_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    # an unset variable is "No value found" with a non-zero status
    return done.stdout.rstrip("\n") if done.returncode == 0 else None


def read_guestinfo(rpc: Rpc) -> dict[str, str]:
    values: dict[str, str] = {}
    for key in KEYS:
        value = rpc(f"info-get {GUESTINFO}{key}")
        if value:
            values[key] = value
    if "admin_password" in values:
        # guestinfo is readable by any process in the guest: blank the secret once consumed
        rpc(f"info-set {GUESTINFO}admin_password ")
    return values


def read_ovf_environment(rpc: Rpc) -> dict[str, str]:
    xml = rpc("info-get guestinfo.ovfEnv")
    return parse_ovf_environment(xml) if xml else {}


def parse_ovf_environment(xml: str) -> dict[str, str]:
    """The ``<Property oe:key=... oe:value=...>`` pairs of an OVF environment document."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise SourceError(f"guestinfo.ovfEnv is not XML: {exc}") from None
    key_attr, value_attr = f"{{{OVF_ENV}}}key", f"{{{OVF_ENV}}}value"
    properties: dict[str, str] = {}
    for prop in root.iter(f"{{{OVF_ENV}}}Property"):
        key = prop.get(key_attr)
        if key:
            properties[key] = prop.get(value_attr, "")
    return properties
