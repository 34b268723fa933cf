"""The network settings in force, kept in network.json: what the console shows and edits."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

from passerelle.firstboot.files import write_atomically
from passerelle.firstboot.interfaces import Interface, first_ethernet
from passerelle.firstboot.paths import Paths
from passerelle.firstboot.settings import DEFAULT_HOSTNAME, NetworkSettings


@dataclass(frozen=True)
class NetworkState:
    settings: NetworkSettings
    hostname: str = DEFAULT_HOSTNAME
    interface: Interface | None = None
    # where the settings came from: "default", "console" or the hypervisor source's name
    source: str = "default"
    notes: tuple[str, ...] = field(default_factory=tuple)

    def with_settings(self, settings: NetworkSettings, source: str) -> NetworkState:
        return replace(self, settings=settings, source=source, notes=())

    def to_json(self) -> dict[str, object]:
        return {
            **self.settings.to_json(),
            "hostname": self.hostname,
            "interface": self.interface.name if self.interface else None,
            "mac": self.interface.mac if self.interface else None,
            "source": self.source,
            "notes": list(self.notes),
        }


def save_network_state(paths: Paths, state: NetworkState) -> None:
    write_atomically(paths.network_state, json.dumps(state.to_json(), indent=2) + "\n")


def load_network_state(paths: Paths) -> NetworkState | None:
    try:
        data = json.loads(paths.network_state.read_text(encoding="utf-8"))
        name = data.get("interface")
        return NetworkState(
            settings=NetworkSettings.from_json(data),
            hostname=str(data.get("hostname") or DEFAULT_HOSTNAME),
            interface=Interface(str(name), data.get("mac")) if name else None,
            source=str(data.get("source") or "default"),
            notes=tuple(str(note) for note in data.get("notes") or ()),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def current_network_state(paths: Paths) -> NetworkState:
    """The saved state, or the defaults on the first ethernet interface before any is saved."""
    return load_network_state(paths) or NetworkState(
        NetworkSettings.default(), interface=first_ethernet(paths)
    )
