"""The facts about this appliance that the console and ``firstboot --show`` present."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from passerelle import __version__
from passerelle.firstboot.certificate import fingerprint
from passerelle.firstboot.first_boot import Report, load_report
from passerelle.firstboot.ha_state import read_ha_state
from passerelle.firstboot.identity import Identity, load_identity
from passerelle.firstboot.licence import LicenceState, demo_licence
from passerelle.firstboot.network_state import NetworkState, load_network_state
from passerelle.firstboot.password import read_initial_password
from passerelle.firstboot.paths import Paths

PRODUCT = "Passerelle"


@dataclass(frozen=True)
class Facts:
    version: str
    network: NetworkState | None
    identity: Identity | None
    licence: LicenceState | None
    ha_state: str
    certificate_sha256: str | None
    report: Report | None
    # shown on the console only when first boot generated it and nobody has changed it yet
    initial_password: str | None
    initial_password_pending: bool

    @property
    def url(self) -> str | None:
        return self.network.settings.url if self.network else None

    def to_json(self) -> dict[str, object]:
        """Everything but the password: this output ends up in logs and tickets."""
        network = self.network
        return {
            "product": PRODUCT,
            "version": self.version,
            "firstboot_done": self.report is not None,
            "serial": self.identity.serial if self.identity else None,
            "serial_source": self.identity.serial_source if self.identity else None,
            "hostname": network.hostname if network else None,
            "url": self.url,
            "network": {
                **network.settings.to_json(),
                "interface": network.interface.name if network.interface else None,
                "source": network.source,
                "notes": list(network.notes),
            }
            if network
            else None,
            "licence": self.licence.to_json() if self.licence else None,
            "ha_state": self.ha_state,
            "certificate_sha256": self.certificate_sha256,
            "admin_password_source": self.report.admin_password_source if self.report else None,
            "initial_admin_password_pending": self.initial_password_pending,
        }


def gather_facts(paths: Paths, now: dt.datetime | None = None) -> Facts:
    now = now or dt.datetime.now(dt.UTC)
    identity = load_identity(paths)
    report = load_report(paths)
    pending = read_initial_password(paths)
    initial = pending
    if report is None or report.admin_password_source != "generated":
        initial = None  # a deployment's own password is its secret, never displayed
    return Facts(
        version=__version__,
        network=load_network_state(paths),
        identity=identity,
        licence=demo_licence(identity.first_boot, now) if identity else None,
        ha_state=read_ha_state(paths),
        certificate_sha256=fingerprint(paths.management_cert),
        report=report,
        initial_password=initial,
        initial_password_pending=pending is not None,
    )
