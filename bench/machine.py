"""What the figures were measured on: they mean nothing without it."""

from __future__ import annotations

import datetime as dt
import os
import platform
import ssl
import subprocess
from pathlib import Path

from bench import tools
from passerelle.engine import compiled

REPO = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _revision() -> str:
    try:
        result = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() or "unknown"


def describe() -> dict[str, str]:
    load = os.getloadavg()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        "python": f"{platform.python_version()} ({ssl.OPENSSL_VERSION})",
        "passerelle": _revision(),
        # The engine the bench starts inherits this environment and these files.
        "passerelle request path": compiled.describe(),
        **tools.versions(),
        "load average at start": " ".join(f"{x:.2f}" for x in load),
    }
