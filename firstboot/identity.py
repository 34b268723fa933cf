"""The appliance identity: its serial number and its first boot time (the demo licence clock).

The serial is "PSL-" and 12 base32 characters. When SMBIOS gives a real system UUID (the
hypervisor's per-VM BIOS UUID) the characters are a hash of it, so the same VM gets the same
serial if its disk is reinstalled; otherwise they come from os.urandom. Either way the serial
is made once and then read from identity.json, which a factory reset keeps so the licence bound
to it stays valid and the demo clock cannot be restarted.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import uuid
from dataclasses import dataclass

from passerelle import __version__
from passerelle.firstboot.files import write_atomically
from passerelle.firstboot.paths import Paths

SERIAL_PREFIX = "PSL-"
# UUIDs that firmware ships unset or as a placeholder: they would give every VM one serial.
_PLACEHOLDER_UUIDS = {
    uuid.UUID(int=0),
    uuid.UUID(int=(1 << 128) - 1),
    uuid.UUID("03000200-0400-0500-0006-000700080009"),
}


@dataclass(frozen=True)
class Identity:
    serial: str
    serial_source: str  # "smbios-uuid" or "random"
    first_boot: dt.datetime
    first_version: str

    def to_json(self) -> dict[str, str]:
        return {
            "serial": self.serial,
            "serial_source": self.serial_source,
            "first_boot": _iso(self.first_boot),
            "first_version": self.first_version,
        }


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def serial_from_uuid(system_uuid: uuid.UUID) -> str:
    digest = hashlib.sha256(b"passerelle-serial\0" + system_uuid.bytes).digest()
    return SERIAL_PREFIX + base64.b32encode(digest).decode("ascii")[:12]


def random_serial() -> str:
    return SERIAL_PREFIX + base64.b32encode(os.urandom(10)).decode("ascii")[:12]


def read_system_uuid(paths: Paths) -> uuid.UUID | None:
    try:
        text = (paths.dmi_dir / "product_uuid").read_text(encoding="ascii").strip()
        value = uuid.UUID(text)
    except (OSError, ValueError):  # unreadable without root, absent outside a VM
        return None
    return None if value in _PLACEHOLDER_UUIDS else value


def make_identity(paths: Paths, now: dt.datetime) -> Identity:
    system_uuid = read_system_uuid(paths)
    if system_uuid is None:
        serial, source = random_serial(), "random"
    else:
        serial, source = serial_from_uuid(system_uuid), "smbios-uuid"
    return Identity(serial, source, now.astimezone(dt.UTC).replace(microsecond=0), __version__)


def load_identity(paths: Paths) -> Identity | None:
    try:
        data = json.loads(paths.identity.read_text(encoding="utf-8"))
        return Identity(
            serial=str(data["serial"]),
            serial_source=str(data.get("serial_source", "unknown")),
            first_boot=dt.datetime.fromisoformat(str(data["first_boot"])).astimezone(dt.UTC),
            first_version=str(data.get("first_version", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ensure_identity(paths: Paths, now: dt.datetime) -> tuple[Identity, bool]:
    """The stored identity, or a new one saved now; True when it was created."""
    existing = load_identity(paths)
    if existing is not None:
        return existing, False
    identity = make_identity(paths, now)
    write_atomically(paths.identity, json.dumps(identity.to_json(), indent=2) + "\n")
    return identity, True
