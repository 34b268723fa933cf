"""Peak resident memory of a running process from a chosen moment on (Linux only)."""

from __future__ import annotations

from pathlib import Path


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(f"{field} not in /proc/{pid}/status")


class PeakMemory:
    """How far the resident memory of process ``pid`` rose above where it stood when made."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        # "5" resets the kernel's peak (VmHWM) to the current resident size.
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        self.start = _status_kib(pid, "VmRSS")

    def growth(self) -> int:
        """Bytes the peak rose by since this object was made."""
        return (_status_kib(self.pid, "VmHWM") - self.start) * 1024
