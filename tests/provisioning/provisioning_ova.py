"""A tiny OVA shaped like the appliance's: pvscsi disk controller, VmxNet3 NIC, one
streamOptimized disk (made by qemu-img when present, else a minimal sparse-extent header)."""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path

DESCRIPTOR = """<?xml version="1.0" encoding="UTF-8"?>
<Envelope vmw:buildId="build-1" xmlns="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
  xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References>
    <File ovf:href="{disk}" ovf:id="file1" ovf:size="{size}"/>
  </References>
  <DiskSection>
    <Info>Virtual disks</Info>
    <Disk ovf:capacity="64" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1"
      ovf:fileRef="file1"
      ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>Networks</Info>
    <Network ovf:name="Management"><Description>management</Description></Network>
  </NetworkSection>
  <VirtualSystem ovf:id="passerelle">
    <Info>Passerelle test appliance</Info>
    <Name>passerelle</Name>
    <OperatingSystemSection ovf:id="96" vmw:osType="debian12_64Guest">
      <Info>Debian</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Hardware</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemType>vmx-14</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:ElementName>2 virtual CPUs</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>2</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:ElementName>2048MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>2048</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:ElementName>SCSI controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>7</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>Management</rasd:Connection>
        <rasd:ElementName>Network adapter 1</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""


def _minimal_stream_vmdk(path: Path) -> None:
    """A sparse-extent header with the streamOptimized flags and an embedded descriptor."""
    descriptor = (
        b"# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
        b'createType="streamOptimized"\nRW 131072 SPARSE "disk.vmdk"\n'
    ).ljust(512, b"\0")
    header = struct.pack(
        "<4sIIQQQQIQQQBccccH",
        b"KDMV",
        3,
        0x30001,
        131072,
        128,
        1,
        1,
        512,
        0,
        0,
        128,
        0,
        b"\n",
        b" ",
        b"\r",
        b"\n",
        1,
    ).ljust(512, b"\0")
    path.write_bytes(header + descriptor + b"\0" * 512 * 126)


def build_test_ova(directory: Path) -> Path:
    disk = directory / "passerelle-disk1.vmdk"
    raw = directory / "disk.raw"
    if shutil.which("qemu-img"):
        subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(raw), "64M"], check=True)
        subprocess.run(
            [
                "qemu-img",
                "convert",
                "-q",
                "-O",
                "vmdk",
                "-o",
                "subformat=streamOptimized",
                str(raw),
                str(disk),
            ],
            check=True,
        )
        raw.unlink()
    else:
        _minimal_stream_vmdk(disk)
    ovf = directory / "passerelle.ovf"
    ovf.write_text(DESCRIPTOR.format(disk=disk.name, size=disk.stat().st_size))
    manifest = directory / "passerelle.mf"
    manifest.write_text(
        "".join(
            f"SHA256({p.name})= {hashlib.sha256(p.read_bytes()).hexdigest()}\n" for p in (ovf, disk)
        )
    )
    ova = directory / "passerelle-test.ova"
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as tar:
        for member in (ovf, manifest, disk):  # the descriptor first, as OVF requires
            tar.add(member, arcname=member.name)
    return ova
