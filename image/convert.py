"""Disk formats for the hypervisors, and the published SHA-256 checksums."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from passerelle.image.steps import run


def to_vmdk(raw: Path, vmdk: Path, log: Path) -> None:
    run(
        [
            "qemu-img",
            "convert",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            raw,
            vmdk,
        ],
        log=log,
    )


def to_vhdx(raw: Path, vhdx: Path, log: Path) -> None:
    run(
        ["qemu-img", "convert", "-f", "raw", "-O", "vhdx", "-o", "subformat=dynamic", raw, vhdx],
        log=log,
    )
    run(["qemu-img", "check", "-f", "vhdx", vhdx], log=log)


def virtual_size(image: Path) -> int:
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", str(image)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(json.loads(info.stdout)["virtual-size"])


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_line(path: Path, name: str | None = None) -> str:
    """``sha256sum`` format, so ``sha256sum -c`` verifies it."""
    return f"{sha256_of(path)}  {name or path.name}\n"
