"""The outside programs the suite drives, installing the Debian packages when they are missing."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

# program -> Debian package that provides it
PROGRAMS = {
    "haproxy": "haproxy",
    "nginx": "nginx",
    "wrk": "wrk",
    "curl": "curl",
    "openssl": "openssl",
}
# nginx's L4 proxy is a dynamic module in Debian's build
STREAM_MODULE_GLOB = "/usr/lib/nginx/modules/ngx_stream_module.so"
STREAM_PACKAGE = "libnginx-mod-stream"
APT_PACKAGES = (*PROGRAMS.values(), STREAM_PACKAGE)


class ToolsUnavailable(RuntimeError):
    """A program is missing and cannot be installed here (not root, or apt failed)."""


def stream_module() -> str | None:
    found = glob.glob(STREAM_MODULE_GLOB)
    return found[0] if found else None


def missing_packages() -> list[str]:
    missing = [pkg for prog, pkg in PROGRAMS.items() if shutil.which(prog) is None]
    if stream_module() is None:
        missing.append(STREAM_PACKAGE)
    return missing


def ensure_installed(allow_install: bool = True) -> None:
    missing = missing_packages()
    if not missing:
        return
    if not allow_install or os.geteuid() != 0:
        raise ToolsUnavailable(
            f"missing: {' '.join(missing)} (install them with apt-get, or run as root)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
    ):
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
        if result.returncode != 0:
            raise ToolsUnavailable(f"{' '.join(argv)} failed: {result.stderr[-800:]}")
    still = missing_packages()
    if still:
        raise ToolsUnavailable(f"still missing after apt-get install: {' '.join(still)}")


def _first_line(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (result.stdout or result.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def versions() -> dict[str, str]:
    return {
        "haproxy": _first_line(["haproxy", "-v"]),
        "nginx": _first_line(["nginx", "-v"]),
        "wrk": _first_line(["wrk", "-v"]),
        "openssl": _first_line(["openssl", "version"]),
        "curl": _first_line(["curl", "--version"]),
    }
