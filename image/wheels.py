"""The Passerelle wheel and its dependencies, as wheels for the image's Python (Debian 12)."""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

from passerelle import compile_hot_path
from passerelle.image.steps import run

# The image's interpreter: Debian bookworm's python3 (CPython 3.11, glibc 2.36, x86-64).
TARGET_PYTHON = "3.11"
TARGET_ABIS = ("cp311", "abi3", "none")
_GLIBC_MINORS = (36, 35, 34, 33, 32, 31, 30, 28, 27, 26, 24, 17, 12, 5)
TARGET_PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in _GLIBC_MINORS),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)


def build_wheels(repo: Path, dest: Path, log: Path, extra: list[str] | None = None) -> list[Path]:
    """Builds the project's wheel from ``repo`` and downloads its dependencies into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip"]
    # The wheel carries the compiled request path as it is: bring it up to date with the
    # sources first, or the appliance would run them uncompiled (nothing to do when current).
    compile_hot_path.build(repo / "engine")
    run([*pip, "wheel", "--no-deps", "-w", dest, repo], log=log)
    own = sorted(dest.glob("passerelle-*.whl"))
    if not own:
        raise FileNotFoundError(f"pip wheel left no passerelle-*.whl in {dest}")
    target = ["--only-binary=:all:", "--python-version", TARGET_PYTHON, "--implementation", "cp"]
    for abi in TARGET_ABIS:
        target += ["--abi", abi]
    for platform in TARGET_PLATFORMS:
        target += ["--platform", platform]
    run(
        [
            *pip,
            "download",
            "--disable-pip-version-check",
            *target,
            "-d",
            dest,
            own[-1],
            *(extra or []),
        ],
        log=log,
    )
    return sorted(dest.glob("*.whl"))


def wheel_set_hash(wheels: list[Path]) -> str:
    """A digest of what the wheels install, not of their zip timestamps.

    A rebuilt project wheel differs byte-wise on every build; its RECORD (every file with its
    SHA-256) only changes when the code does, so unchanged code keeps its cache entry.
    """
    digest = hashlib.sha256()
    for wheel in sorted(wheels, key=lambda p: p.name):
        digest.update(wheel.name.encode() + b"\0")
        with zipfile.ZipFile(wheel) as archive:
            records = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
            if records:
                digest.update(archive.read(records[0]))
            else:
                digest.update(hashlib.sha256(wheel.read_bytes()).digest())
    return digest.hexdigest()
