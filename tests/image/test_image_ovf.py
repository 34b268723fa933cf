import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from passerelle.image import ovf

NS = {"ovf": ovf.OVF, "rasd": ovf.RASD, "vssd": ovf.VSSD, "vmw": ovf.VMW}
APP = ovf.Appliance(
    name="passerelle-1.2.3",
    version="1.2.3",
    cpus=2,
    memory_mib=2048,
    disk_file="passerelle-1.2.3-disk1.vmdk",
    disk_file_size=123456,
    disk_capacity_bytes=4096 * 2**20,
)


def _items(root: ET.Element) -> dict[str, ET.Element]:
    items = root.findall(".//ovf:VirtualHardwareSection/ovf:Item", NS)
    return {item.findtext("rasd:ResourceType", namespaces=NS) or "": item for item in items}


def _rasd(item: ET.Element, name: str) -> str | None:
    return item.findtext(f"rasd:{name}", namespaces=NS)


def test_descriptor_declares_the_virtual_hardware() -> None:
    root = ET.fromstring(ovf.descriptor(APP))
    assert root.tag == f"{{{ovf.OVF}}}Envelope"
    file = root.find("ovf:References/ovf:File", NS)
    assert file is not None
    assert file.get(f"{{{ovf.OVF}}}href") == APP.disk_file
    assert file.get(f"{{{ovf.OVF}}}size") == "123456"
    disk = root.find("ovf:DiskSection/ovf:Disk", NS)
    assert disk is not None
    assert disk.get(f"{{{ovf.OVF}}}capacity") == str(4096 * 2**20)
    assert disk.get(f"{{{ovf.OVF}}}format") == ovf.STREAM_OPTIMIZED
    assert disk.get(f"{{{ovf.OVF}}}fileRef") == "file1"
    assert root.findtext(".//vssd:VirtualSystemType", namespaces=NS) == "vmx-13"
    assert root.findtext(".//ovf:ProductSection/ovf:Version", namespaces=NS) == "1.2.3"
    items = _items(root)
    assert _rasd(items["3"], "VirtualQuantity") == "2"  # CPUs
    assert _rasd(items["4"], "VirtualQuantity") == "2048"  # MiB
    assert _rasd(items["4"], "AllocationUnits") == "byte * 2^20"
    # The cloud kernel has pvscsi and vmxnet3, not LSI Logic or E1000.
    assert _rasd(items["6"], "ResourceSubType") == "VirtualSCSI"
    assert _rasd(items["17"], "Parent") == _rasd(items["6"], "InstanceID")
    assert _rasd(items["17"], "HostResource") == "ovf:/disk/vmdisk1"
    assert _rasd(items["10"], "ResourceSubType") == "VmxNet3"
    network = root.find("ovf:NetworkSection/ovf:Network", NS)
    assert network is not None
    assert _rasd(items["10"], "Connection") == network.get(f"{{{ovf.OVF}}}name")
    assert len(root.findall(".//ovf:Item", NS)) == 5  # one NIC, one controller, one disk


def test_rasd_elements_are_in_schema_order() -> None:
    root = ET.fromstring(ovf.descriptor(APP))
    for item in root.findall(".//ovf:Item", NS):
        names = [child.tag.split("}")[1] for child in item]
        assert names == sorted(names)


def test_manifest_is_sha1_per_member(tmp_path: Path) -> None:
    first, second = tmp_path / "a.ovf", tmp_path / "b.vmdk"
    first.write_bytes(b"descriptor")
    zeros = bytes(100000)
    second.write_bytes(zeros)
    text = ovf.manifest([first, second])
    assert text == (
        f"SHA1(a.ovf)= {hashlib.sha1(b'descriptor').hexdigest()}\n"
        f"SHA1(b.vmdk)= {hashlib.sha1(zeros).hexdigest()}\n"
    )


def _small_ova(tmp_path: Path) -> Path:
    raw, vmdk = tmp_path / "disk.raw", tmp_path / "passerelle-1.2.3-disk1.vmdk"
    with raw.open("wb") as file:
        file.truncate(16 * 2**20)
        file.write(b"boot sector")
    subprocess.run(
        [
            "qemu-img",
            "convert",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            str(raw),
            str(vmdk),
        ],
        check=True,
    )
    app = ovf.Appliance(
        name="passerelle-1.2.3",
        version="1.2.3",
        cpus=2,
        memory_mib=2048,
        disk_file=vmdk.name,
        disk_file_size=vmdk.stat().st_size,
        disk_capacity_bytes=16 * 2**20,
    )
    descriptor = tmp_path / "passerelle-1.2.3.ovf"
    descriptor.write_bytes(ovf.descriptor(app))
    manifest = tmp_path / "passerelle-1.2.3.mf"
    manifest.write_text(ovf.manifest([descriptor, vmdk]))
    ova = tmp_path / "passerelle-1.2.3.ova"
    ovf.write_ova(ova, descriptor, manifest, [vmdk])
    return ova


needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-utils")


@needs_qemu_img
def test_ova_has_descriptor_first_and_a_manifest_that_verifies(tmp_path: Path) -> None:
    ova = _small_ova(tmp_path)
    with tarfile.open(ova) as archive:
        members = archive.getmembers()
        assert [m.name for m in members] == [
            "passerelle-1.2.3.ovf",
            "passerelle-1.2.3.mf",
            "passerelle-1.2.3-disk1.vmdk",
        ]
        assert all(m.isfile() for m in members)
        contents = {m.name: archive.extractfile(m).read() for m in members}  # type: ignore[union-attr]
    for line in contents["passerelle-1.2.3.mf"].decode().splitlines():
        name, digest = line.removeprefix("SHA1(").split(")= ")
        assert hashlib.sha1(contents[name]).hexdigest() == digest


@needs_qemu_img
def test_cot_reads_the_ova(tmp_path: Path) -> None:
    pytest.importorskip("COT")
    ova = _small_ova(tmp_path)
    cot = Path(sys.executable).parent / "cot"
    result = subprocess.run(
        [str(cot), "--force", "info", str(ova)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"SCSI device types:\s+VirtualSCSI\n", result.stdout)
    assert re.search(r"Ethernet device types:\s+VmxNet3\n", result.stdout)
    assert re.search(r"None \(default\)\s+2\s+2 GiB\s+1\s", result.stdout)
    assert "passerelle-1.2.3-disk1.vmdk" in result.stdout
