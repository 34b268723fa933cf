"""What a new appliance does once, on its first boot. Each step only fills in what is missing,
so a run cut short (power loss) is simply run again; the marker is written last."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from passerelle.firstboot.announce import Announcement, announce
from passerelle.firstboot.certificate import ensure_management_certificate, fingerprint
from passerelle.firstboot.choose import choose
from passerelle.firstboot.files import write_atomically
from passerelle.firstboot.identity import Identity, ensure_identity
from passerelle.firstboot.interfaces import first_ethernet
from passerelle.firstboot.metadata import Source, collect
from passerelle.firstboot.network_state import NetworkState, save_network_state
from passerelle.firstboot.password import (
    generate_password,
    read_initial_password,
    write_initial_password,
)
from passerelle.firstboot.paths import Paths
from passerelle.firstboot.system import System, SystemActionError

log = logging.getLogger("passerelle.firstboot")


@dataclass(frozen=True)
class Report:
    """What the first boot did, stored as the marker's content."""

    completed: dt.datetime
    network_source: str
    admin_password_source: str  # "generated" or "deployment"
    notes: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "completed": self.completed.astimezone(dt.UTC).isoformat(timespec="seconds"),
            "network_source": self.network_source,
            "admin_password_source": self.admin_password_source,
            "notes": list(self.notes),
        }


def load_report(paths: Paths) -> Report | None:
    try:
        data = json.loads(paths.marker.read_text(encoding="utf-8"))
        return Report(
            completed=dt.datetime.fromisoformat(str(data["completed"])),
            network_source=str(data.get("network_source", "")),
            admin_password_source=str(data.get("admin_password_source", "")),
            notes=tuple(str(n) for n in data.get("notes") or ()),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def run_first_boot(
    paths: Paths, system: System, sources: Sequence[Source], now: dt.datetime | None = None
) -> Report | None:
    """Do the first boot; None when it was already done (nothing is touched then)."""
    if paths.marker.exists():
        return None
    now = now or dt.datetime.now(dt.UTC)
    # secrets live here; the engine unit's StateDirectoryMode agrees
    paths.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    choice = choose(collect(sources))

    interface = first_ethernet(paths)
    if interface is None:
        log.warning("no ethernet interface found; matching any en*/eth* interface")
    state = NetworkState(choice.settings, choice.hostname, interface, choice.source, choice.notes)
    save_network_state(paths, state)
    where = interface.name if interface else "the first interface"
    log.info("network: %s on %s (%s)", choice.settings.describe(), where, choice.source)
    try:
        system.apply_network(choice.settings, interface)
    except SystemActionError as exc:
        # normal when ordered before systemd-networkd: it reads the file when it starts
        log.info("network not reloaded now (%s); applied when systemd-networkd starts", exc)
    try:
        system.set_hostname(choice.hostname)
    except SystemActionError as exc:
        log.warning("hostname %s written but not set now: %s", choice.hostname, exc)

    identity, created = ensure_identity(paths, now)
    _log_identity(identity, created)
    system.generate_ssh_host_keys()
    if ensure_management_certificate(paths, choice.hostname, choice.settings.address.ip):
        log.info("management certificate SHA-256 %s", fingerprint(paths.management_cert))

    password_source = "deployment" if choice.admin_password else "generated"
    generated: str | None = None
    if choice.admin_password:
        write_initial_password(paths, choice.admin_password)
    else:
        generated = read_initial_password(paths)
        if generated is None:
            generated = generate_password()
            write_initial_password(paths, generated)
    log.info("initial admin password (%s) in %s", password_source, paths.initial_password)
    announce(
        paths,
        Announcement(
            url=choice.settings.url,
            hostname=choice.hostname,
            serial=identity.serial,
            certificate_sha256=fingerprint(paths.management_cert) or "unreadable",
            admin_password=generated,
        ),
    )

    report = Report(now, choice.source, password_source, choice.notes)
    write_atomically(paths.marker, json.dumps(report.to_json(), indent=2) + "\n")
    log.info("first boot done; browse to %s", choice.settings.url)
    return report


def _log_identity(identity: Identity, created: bool) -> None:
    start = identity.first_boot.isoformat(timespec="seconds")
    if created:
        log.info(
            "serial %s (%s); demo licence starts %s", identity.serial, identity.serial_source, start
        )
    else:
        log.info("serial %s kept; demo licence started %s", identity.serial, start)
