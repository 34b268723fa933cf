"""The mount-free disk assembly, on a small disk with stand-in kernel and boot loader files."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from passerelle.image import disk
from passerelle.image.rootfs import BootFiles

TOOLS = ("mkfs.vfat", "mcopy", "mdir", "syslinux", "mkfs.ext4", "sfdisk", "e2fsck")
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS), reason="needs dosfstools, mtools, syslinux"
)
IDS = disk.DiskIds(
    root_uuid="0b0e1d9c-3f0e-4a59-9d55-1f7b8d2a6c11",
    esp_serial="1a2b3c4d",
    root_partuuid="9f3c2a77-5a48-4f5d-8a4b-0c6c2f0a1b2e",
)


def _boot_files(tmp_path: Path) -> BootFiles:
    efi = tmp_path / "efi"
    efi.mkdir()
    for name in ("shimx64.efi", "grubx64.efi", "mmx64.efi"):
        (efi / name).write_bytes(name.encode())
    kernel, initrd = tmp_path / "vmlinuz-6.1.0-1-cloud-amd64", tmp_path / "initrd.img"
    kernel.write_bytes(b"kernel")
    initrd.write_bytes(b"initrd")
    return BootFiles(kernel=kernel, initrd=initrd, efi_dir=efi)


def test_boot_configurations_point_at_the_root_file_system() -> None:
    syslinux = disk.syslinux_cfg(IDS, "console=ttyS0")
    assert f"APPEND root=UUID={IDS.root_uuid} ro console=ttyS0" in syslinux
    grub = disk.grub_cfg(IDS, "console=ttyS0")
    assert "search --no-floppy --fs-uuid --set=root 1A2B-3C4D" in grub
    assert f"linux /vmlinuz root=UUID={IDS.root_uuid} ro console=ttyS0" in grub


def test_assembled_disk_has_gpt_esp_and_root(tmp_path: Path) -> None:
    log = tmp_path / "log"
    esp, root_img, image = tmp_path / "esp.img", tmp_path / "root.img", tmp_path / "disk.raw"
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("passerelle\n")
    disk.build_esp(esp, 64, _boot_files(tmp_path), IDS, "console=ttyS0", log)
    disk.build_root_fs(root_img, disk.root_size_mib(128, 64), tree, IDS, log)
    disk.assemble(image, 128, 64, esp, root_img, IDS, log)

    assert image.stat().st_size == 128 * disk.MIB
    table = json.loads(
        subprocess.run(["sfdisk", "--json", str(image)], capture_output=True, check=True).stdout
    )
    first, second = table["partitiontable"]["partitions"]
    assert table["partitiontable"]["label"] == "gpt"
    assert (first["start"], first["size"]) == (2048, 64 * 2048)
    assert first["type"] == disk.ESP_TYPE and "LegacyBIOSBootable" in first.get("attrs", "")
    assert second["start"] == 65 * 2048 and second["type"] == disk.ROOT_TYPE
    assert second["uuid"].lower() == IDS.root_partuuid
    # BIOS: syslinux's GPT-aware MBR code in sector 0, ldlinux on the ESP.
    assert image.read_bytes()[:440] == disk.gptmbr().read_bytes()[:440]
    listing = subprocess.run(
        ["mdir", "-i", f"{image}@@{disk.MIB}", "-/", "-a", "-b", "::/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in (
        "BOOTX64.EFI",
        "grubx64.efi",
        "mmx64.efi",
        "grub.cfg",
        "syslinux.cfg",
        "vmlinuz",
        "ldlinux.sys",
    ):
        assert name in listing, name
    # The root file system, cut back out of the disk, is a clean ext4 with the tree's files.
    cut = tmp_path / "cut.img"
    subprocess.run(
        [
            "dd",
            f"if={image}",
            f"of={cut}",
            "bs=1M",
            "skip=65",
            f"count={disk.root_size_mib(128, 64)}",
            "status=none",
        ],
        check=True,
    )
    subprocess.run(["e2fsck", "-fn", str(cut)], check=True, capture_output=True)
    found = subprocess.run(
        ["debugfs", "-R", "cat /etc/hostname", str(cut)], capture_output=True, text=True
    )
    assert found.stdout == "passerelle\n"
