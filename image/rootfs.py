"""The appliance root filesystem, in two cached layers and one cheap overlay.

1. base: Debian (mmdebstrap --format=tar), keyed on suite, mirrors, packages and options;
2. venv: /opt/passerelle with the wheels installed, keyed on the base and the wheel set;
3. overlay (never cached, it is small): systemd units, network fallback, guest scripts, fstab.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from passerelle.image.cache import LayerCache, key_of
from passerelle.image.steps import run
from passerelle.image.variables import PACKER_DIR

EFI_DIR = "usr/lib/passerelle/efi"  # signed shim, its MOK manager and signed GRUB, in the image
VENV = "opt/passerelle"

# Documentation and translations are of no use on an appliance and cost ~30 MB of OVA.
DPKG_OPTIONS = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
)
# Debian's signed boot chain for UEFI Secure Boot, without installing the packages (their
# maintainer scripts run grub-install against the build host's firmware).
EFI_HOOK = (
    'chroot "$1" sh -ec "mkdir -p /tmp/efi /' + EFI_DIR + "; cd /tmp/efi; "
    "apt-get download -q shim-signed shim-helpers-amd64-signed grub-efi-amd64-signed; "
    "for d in *.deb; do dpkg-deb -x \\$d x; done; "
    "cp x/usr/lib/shim/shimx64.efi.signed /" + EFI_DIR + "/shimx64.efi; "
    "cp x/usr/lib/shim/mmx64.efi.signed /" + EFI_DIR + "/mmx64.efi; "
    "cp x/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed /" + EFI_DIR + "/grubx64.efi; "
    'cd /; rm -rf /tmp/efi"'
)


def mmdebstrap_version() -> str:
    result = subprocess.run(["mmdebstrap", "--version"], capture_output=True, text=True)
    return result.stdout.strip()


def mmdebstrap_command(resolved: Mapping[str, Any], output: Path) -> list[str]:
    command = [
        "mmdebstrap",
        "--variant=apt",
        "--mode=root",
        "--format=tar",
        "--include=" + ",".join(resolved["packages"]),
    ]
    command += [f"--dpkgopt={option}" for option in DPKG_OPTIONS]
    command += [f"--customize-hook={EFI_HOOK}", resolved["suite"], str(output)]
    return command + list(resolved["mirrors"])


def base_inputs(resolved: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "layer": "base",
        "command": mmdebstrap_command(resolved, Path("OUT")),
        "mmdebstrap": mmdebstrap_version(),
    }


def build_base(resolved: Mapping[str, Any], cache: LayerCache, log: Path) -> tuple[Path, bool]:
    """The base layer tarball and whether it came from the cache."""
    inputs = base_inputs(resolved)
    key = key_of(inputs)
    cached = cache.get("base", key)
    if cached:
        return cached, True
    partial = cache.partial("base", key)
    try:
        run(mmdebstrap_command(resolved, partial), log=log)
        return cache.commit(partial, "base", key, inputs), False
    finally:
        partial.unlink(missing_ok=True)


def build_venv(
    base: Path,
    wheels: list[Path],
    wheel_hash: str,
    extra_requirements: list[str],
    cache: LayerCache,
    work: Path,
    log: Path,
) -> tuple[Path, bool]:
    """The /opt/passerelle layer, built by the image's own Python inside the base layer."""
    inputs = {"layer": "venv", "base": base.name, "wheels": wheel_hash, "extra": extra_requirements}
    key = key_of(inputs)
    cached = cache.get("venv", key)
    if cached:
        return cached, True
    root = work / "venv-root"
    extract(base, root)
    staged = root / "tmp" / "wheels"
    staged.mkdir(parents=True)
    for wheel in wheels:
        shutil.copy2(wheel, staged)
    own = next(w.name for w in wheels if w.name.startswith("passerelle-"))
    # The build host's pip settings (indexes, find-links) mean nothing inside the image.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    run(["chroot", root, "python3", "-m", "venv", "/" + VENV], log=log, env=env)
    pip = ["chroot", root, f"/{VENV}/bin/pip", "install", "--no-index", "--no-cache-dir"]
    pip += ["--disable-pip-version-check", "--find-links", "/tmp/wheels"]
    run([*pip, f"/tmp/wheels/{own}", *extra_requirements], log=log, env=env)
    partial = cache.partial("venv", key)
    try:
        run(["tar", "-C", root, "--numeric-owner", "-cf", partial, f"./{VENV}"], log=log)
        return cache.commit(partial, "venv", key, inputs), False
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(root, ignore_errors=True)


def extract(tarball: Path, root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    run(["tar", "-C", root, "--numeric-owner", "-xpf", tarball])


@dataclass(frozen=True)
class BootFiles:
    kernel: Path
    initrd: Path
    efi_dir: Path


def boot_files(root: Path) -> BootFiles:
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise FileNotFoundError("no /boot/vmlinuz-* in the root filesystem (kernel package?)")
    release = kernels[-1].name.removeprefix("vmlinuz-")
    initrd = root / "boot" / f"initrd.img-{release}"
    if not initrd.is_file():
        raise FileNotFoundError(f"no /boot/initrd.img-{release} in the root filesystem")
    return BootFiles(kernel=kernels[-1], initrd=initrd, efi_dir=root / EFI_DIR)


# Build-time tools the appliance never runs (~9 MiB of OVA): pip and setuptools in the
# virtualenv, with setuptools' .pth hook (it imports the removed _distutils_hack at every
# interpreter start), and the wheels Debian keeps for `python3 -m venv`.
SITE_PACKAGES = VENV + "/lib/python3*/site-packages"
UNUSED = (
    *(
        f"{SITE_PACKAGES}/{name}"
        for name in (
            "pip",
            "pip-*.dist-info",
            "setuptools",
            "setuptools-*.dist-info",
            "pkg_resources",
            "_distutils_hack",
            "distutils-precedence.pth",
        )
    ),
    VENV + "/bin/pip*",
    "usr/share/python-wheels",
)


def trim(root: Path) -> list[Path]:
    """Removes :data:`UNUSED` from the root filesystem; what was removed."""
    removed = sorted(path for pattern in UNUSED for path in root.glob(pattern))
    for path in removed:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return removed


ENABLED_UNITS = (
    "systemd-networkd.service",
    "passerelle-firstboot.service",
    "passerelle.service",
    "passerelle-console.service",
)


def apply_overlay(root: Path, root_uuid: str, esp_uuid: str, log: Path) -> None:
    """The appliance's own files on top of the layers, and the sealing boot as default target."""
    units = root / "usr/lib/systemd/system"
    for unit in sorted((PACKER_DIR / "files" / "systemd").iterdir()):
        shutil.copy(unit, units / unit.name)
    network = root / "etc/systemd/network"
    network.mkdir(parents=True, exist_ok=True)
    for config in sorted((PACKER_DIR / "files" / "network").iterdir()):
        shutil.copy(config, network / config.name)
    libexec = root / "usr/lib/passerelle"
    libexec.mkdir(parents=True, exist_ok=True)
    for script in sorted((PACKER_DIR / "scripts").iterdir()):
        shutil.copy(script, libexec / script.name)
    trim(root)
    command = root / "usr/bin/passerelle"
    command.unlink(missing_ok=True)
    command.symlink_to(f"/{VENV}/bin/passerelle")
    # The boot test hands settings to first boot through QEMU's fw_cfg.
    (root / "etc/modules-load.d/qemu_fw_cfg.conf").write_text("qemu_fw_cfg\n")
    (root / "etc/hostname").write_text("passerelle\n")
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tpasserelle\n")
    (root / "etc/fstab").write_text(
        f"UUID={root_uuid}\t/\text4\terrors=remount-ro\t0\t1\n"
        f"UUID={esp_uuid}\t/boot/efi\tvfat\tumask=0077,nofail\t0\t2\n"
    )
    (root / "boot/efi").mkdir(parents=True, exist_ok=True)
    for path in root.glob("etc/ssh/ssh_host_*"):
        path.unlink()  # each appliance makes its own at first boot
    run(["systemctl", f"--root={root}", "enable", *ENABLED_UNITS], log=log)
    # `passerelle engine` runs keepalived as its own child for HA; the distribution's unit
    # would start a second one with the stock configuration.
    run(["systemctl", f"--root={root}", "mask", "keepalived.service"], log=log)
    run(["systemctl", f"--root={root}", "set-default", "passerelle-seal.target"], log=log)
