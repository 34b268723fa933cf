"""GPT disk assembled without mounting anything: file systems are built as files, then placed.

Layout: 1 MiB for the protective MBR (syslinux gptmbr.bin) and the GPT, the EFI system
partition (FAT32: shim, GRUB, syslinux, kernel and initrd) and the ext4 root file system.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from passerelle.image.rootfs import BootFiles
from passerelle.image.steps import run

MIB = 1024 * 1024
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
ROOT_TYPE = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"  # Linux root (x86-64)
GPTMBR_CANDIDATES = ("/usr/lib/syslinux/mbr/gptmbr.bin", "/usr/lib/SYSLINUX/gptmbr.bin")


@dataclass(frozen=True)
class DiskIds:
    root_uuid: str  # ext4 file system UUID (root=UUID=...)
    esp_serial: str  # FAT volume id, 8 hex digits
    root_partuuid: str

    @property
    def esp_uuid(self) -> str:  # how blkid and GRUB spell a FAT volume id
        return f"{self.esp_serial[:4]}-{self.esp_serial[4:]}".upper()

    @classmethod
    def new(cls) -> DiskIds:
        return cls(str(uuid.uuid4()), os.urandom(4).hex(), str(uuid.uuid4()))


def syslinux_cfg(ids: DiskIds, cmdline: str) -> str:
    return (
        "DEFAULT passerelle\nPROMPT 0\nTIMEOUT 0\n\nLABEL passerelle\n"
        "  LINUX /vmlinuz\n  INITRD /initrd.img\n"
        f"  APPEND root=UUID={ids.root_uuid} ro {cmdline}\n"
    )


def grub_cfg(ids: DiskIds, cmdline: str) -> str:
    # Debian's signed GRUB reads grub.cfg next to itself; the kernel it loads is checked
    # against shim's keys, so Secure Boot holds from firmware to kernel.
    return (
        "set timeout=0\nset default=0\n"
        f"search --no-floppy --fs-uuid --set=root {ids.esp_uuid}\n"
        "menuentry 'Passerelle' {\n"
        f"  linux /vmlinuz root=UUID={ids.root_uuid} ro {cmdline}\n"
        "  initrd /initrd.img\n}\n"
    )


def gptmbr() -> Path:
    for candidate in GPTMBR_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise FileNotFoundError("syslinux gptmbr.bin not found: apt-get install syslinux-common")


def build_esp(
    path: Path, size_mib: int, boot: BootFiles, ids: DiskIds, cmdline: str, log: Path
) -> None:
    work = path.parent / "esp-files"
    work.mkdir(exist_ok=True)
    (work / "syslinux.cfg").write_text(syslinux_cfg(ids, cmdline))
    (work / "grub.cfg").write_text(grub_cfg(ids, cmdline))
    path.unlink(missing_ok=True)
    run(
        [
            "mkfs.vfat",
            "-C",
            "-F",
            "32",
            "-n",
            "PASSERELLE",
            "-i",
            ids.esp_serial,
            path,
            size_mib * 1024,
        ],
        log=log,
    )
    image = ["-i", str(path)]
    run(["mmd", *image, "::/EFI", "::/EFI/BOOT", "::/EFI/debian"], log=log)
    efi = boot.efi_dir
    copies = [
        (efi / "shimx64.efi", "::/EFI/BOOT/BOOTX64.EFI"),
        (efi / "grubx64.efi", "::/EFI/BOOT/grubx64.efi"),
        (efi / "mmx64.efi", "::/EFI/BOOT/mmx64.efi"),
        (work / "grub.cfg", "::/EFI/BOOT/grub.cfg"),
        (work / "grub.cfg", "::/EFI/debian/grub.cfg"),
        (work / "syslinux.cfg", "::/syslinux.cfg"),
        (boot.kernel, "::/vmlinuz"),
        (boot.initrd, "::/initrd.img"),
    ]
    for source, target in copies:
        if not source.is_file():
            raise FileNotFoundError(f"{source} is missing (needed at {target})")
        run(["mcopy", *image, source, target], log=log)
    run(["syslinux", "--install", path], log=log)
    shutil.rmtree(work)


def build_root_fs(path: Path, size_mib: int, root: Path, ids: DiskIds, log: Path) -> None:
    path.unlink(missing_ok=True)
    run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            "passerelle",
            "-U",
            ids.root_uuid,
            "-d",
            root,
            path,
            f"{size_mib}M",
        ],
        log=log,
    )


def assemble(
    disk: Path, disk_mib: int, esp_mib: int, esp: Path, rootfs: Path, ids: DiskIds, log: Path
) -> None:
    """Writes the partition table and places the file systems; the result is sparse."""
    root_mib = root_size_mib(disk_mib, esp_mib)
    with disk.open("wb") as file:
        file.truncate(disk_mib * MIB)
    sectors = MIB // 512
    table = (
        "label: gpt\nunit: sectors\nfirst-lba: 2048\n"
        f'start=2048, size={esp_mib * sectors}, type={ESP_TYPE}, name="EFI system", '
        'attrs="LegacyBIOSBootable"\n'
        f"start={(1 + esp_mib) * sectors}, size={root_mib * sectors}, type={ROOT_TYPE}, "
        f'name="passerelle-root", uuid={ids.root_partuuid}\n'
    )
    run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", disk], log=log, input=table.encode())
    dd = ["dd", f"of={disk}", "bs=1M", "conv=notrunc,sparse", "status=none"]
    run([*dd, f"if={esp}", "seek=1"], log=log)
    run([*dd, f"if={rootfs}", f"seek={1 + esp_mib}"], log=log)
    run(
        ["dd", f"if={gptmbr()}", f"of={disk}", "bs=440", "count=1", "conv=notrunc", "status=none"],
        log=log,
    )


def root_size_mib(disk_mib: int, esp_mib: int) -> int:
    return disk_mib - esp_mib - 2  # 1 MiB before the ESP, 1 MiB for the backup GPT
