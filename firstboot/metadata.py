"""Settings a hypervisor hands to the appliance, before any of them is checked.

Keys: ip (CIDR, or with a separate netmask), gateway, dns (list, or one string separated by
spaces or commas), hostname, admin_password. A key may carry a "passerelle." prefix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

log = logging.getLogger("passerelle.firstboot")

KEYS = ("ip", "netmask", "gateway", "dns", "hostname", "admin_password")
PREFIX = "passerelle."


class SourceError(ValueError):
    """Data from a source that cannot be read; the source is skipped."""


@dataclass(frozen=True)
class Metadata:
    source: str
    values: Mapping[str, str | list[str]]

    def get(self, key: str) -> str | None:
        value = self.values.get(key)
        if value is None:
            return None
        return " ".join(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class Source:
    name: str
    read: Callable[[], Mapping[str, object] | None]


def normalise(raw: Mapping[str, object], source: str) -> Metadata:
    values: dict[str, str | list[str]] = {}
    for key, value in raw.items():
        name = str(key).strip().lower()
        name = name.removeprefix(PREFIX).replace("-", "_")
        if name not in KEYS:
            continue
        if isinstance(value, list | tuple):
            values[name] = [str(item).strip() for item in value if str(item).strip()]
        elif value is not None and str(value).strip():
            # a password keeps its spaces; validation refuses leading and trailing ones
            values[name] = str(value) if name == "admin_password" else str(value).strip()
    return Metadata(source, values)


def collect(sources: Sequence[Source]) -> Metadata | None:
    """The first source that gives any setting. Sources are never mixed: half the settings from
    one hypervisor mechanism and half from another would be a configuration nobody wrote."""
    for source in sources:
        try:
            raw = source.read()
        except SourceError as exc:
            log.warning("metadata from %s ignored: %s", source.name, exc)
            continue
        if not raw:
            continue
        metadata = normalise(raw, source.name)
        if metadata.values:
            log.info("settings from %s: %s", source.name, ", ".join(sorted(metadata.values)))
            return metadata
    return None
