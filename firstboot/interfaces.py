"""Which network interface the management address goes on: the first ethernet one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from passerelle.firstboot.paths import Paths

ARPHRD_ETHER = "1"


@dataclass(frozen=True)
class Interface:
    name: str
    mac: str | None = None


def first_ethernet(paths: Paths) -> Interface | None:
    """The ethernet interface with the lowest ifindex that sits on a device (a virtual NIC),
    leaving out bridges, veths and wireless; None when there is none."""
    candidates: list[tuple[int, str, Path]] = []
    try:
        entries = list(paths.net_class.iterdir())
    except OSError:
        return None
    for entry in entries:
        if _read(entry / "type") != ARPHRD_ETHER:
            continue
        if not (entry / "device").exists() or (entry / "wireless").exists():
            continue
        index = _read(entry / "ifindex")
        candidates.append((int(index) if index and index.isdigit() else 1 << 30, entry.name, entry))
    if not candidates:
        return None
    _, name, entry = min(candidates)
    mac = _read(entry / "address")
    return Interface(name, mac or None)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
