"""OVF 1.0 descriptor, manifest and OVA archive.

OVF 1.0 because it is the version every VMware product (and VirtualBox, and cot) imports; OVF
1.x manifests are specified as SHA-1, so the manifest inside the OVA is SHA-1, which is an
integrity check of the members only. The SHA-256 checksum files published next to the OVA are
what users verify the download against.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

OVF = "http://schemas.dmtf.org/ovf/envelope/1"
RASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
VMW = "http://www.vmware.com/schema/ovf"
CIM = "http://schemas.dmtf.org/wbem/wscim/1/common"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
STREAM_OPTIMIZED = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
for _prefix, _uri in (("ovf", OVF), ("rasd", RASD), ("vssd", VSSD), ("vmw", VMW), ("cim", CIM)):
    ET.register_namespace(_prefix, _uri)
ET.register_namespace("xsi", XSI)

# CIM ResourceType values (DSP1041 / CIM_ResourceAllocationSettingData)
CPU, MEMORY, SCSI_CONTROLLER, ETHERNET, DISK_DRIVE = 3, 4, 6, 10, 17
OS_DEBIAN_64 = "96"  # CIM_OperatingSystem "Debian 64-Bit"


@dataclass(frozen=True)
class Appliance:
    name: str
    version: str
    cpus: int
    memory_mib: int
    disk_file: str
    disk_file_size: int
    disk_capacity_bytes: int
    network: str = "Management"
    # ESXi 7.0 and later know this guest type; 8.0 adds debian12_64Guest.
    vmware_os_type: str = "debian11_64Guest"
    vmware_hardware: str = "vmx-13"  # ESXi 6.5 and later


def _o(name: str) -> str:
    return f"{{{OVF}}}{name}"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _item(section: ET.Element, fields: dict[str, str]) -> ET.Element:
    item = _sub(section, _o("Item"))
    # The CIM schema orders RASD elements alphabetically; strict importers check it.
    for name in sorted(fields):
        _sub(item, f"{{{RASD}}}{name}", fields[name])
    return item


def descriptor(app: Appliance) -> bytes:
    envelope = ET.Element(_o("Envelope"), {f"{{{VMW}}}buildId": "passerelle"})
    refs = _sub(envelope, _o("References"))
    _sub(
        refs,
        _o("File"),
        **{_o("href"): app.disk_file, _o("id"): "file1", _o("size"): str(app.disk_file_size)},
    )

    disks = _sub(envelope, _o("DiskSection"))
    _sub(disks, _o("Info"), "Virtual disk information")
    _sub(
        disks,
        _o("Disk"),
        **{
            _o("capacity"): str(app.disk_capacity_bytes),
            _o("capacityAllocationUnits"): "byte",
            _o("diskId"): "vmdisk1",
            _o("fileRef"): "file1",
            _o("format"): STREAM_OPTIMIZED,
        },
    )
    networks = _sub(envelope, _o("NetworkSection"))
    _sub(networks, _o("Info"), "The list of logical networks")
    network = _sub(networks, _o("Network"), **{_o("name"): app.network})
    _sub(network, _o("Description"), "Management network of the appliance")

    system = _sub(envelope, _o("VirtualSystem"), **{_o("id"): app.name})
    _sub(system, _o("Info"), "Passerelle virtual load balancer appliance")
    _sub(system, _o("Name"), app.name)
    product = _sub(system, _o("ProductSection"))
    _sub(product, _o("Info"), "Product information")
    _sub(product, _o("Product"), "Passerelle")
    _sub(product, _o("Vendor"), "Passerelle")
    _sub(product, _o("Version"), app.version)
    _sub(product, _o("FullVersion"), app.version)
    os_section = _sub(
        system,
        _o("OperatingSystemSection"),
        **{_o("id"): OS_DEBIAN_64, f"{{{VMW}}}osType": app.vmware_os_type},
    )
    _sub(os_section, _o("Info"), "The guest operating system")
    _sub(os_section, _o("Description"), "Debian GNU/Linux 12 (64-bit)")

    hardware = _sub(system, _o("VirtualHardwareSection"))
    _sub(hardware, _o("Info"), "Virtual hardware requirements")
    vsys = _sub(hardware, _o("System"))
    for name, value in (
        ("ElementName", "Virtual Hardware Family"),
        ("InstanceID", "0"),
        ("VirtualSystemIdentifier", app.name),
        ("VirtualSystemType", app.vmware_hardware),
    ):
        _sub(vsys, f"{{{VSSD}}}{name}", value)
    _item(
        hardware,
        {
            "AllocationUnits": "hertz * 10^6",
            "Description": "Number of virtual CPUs",
            "ElementName": f"{app.cpus} virtual CPU(s)",
            "InstanceID": "1",
            "ResourceType": str(CPU),
            "VirtualQuantity": str(app.cpus),
        },
    )
    _item(
        hardware,
        {
            "AllocationUnits": "byte * 2^20",
            "Description": "Memory size",
            "ElementName": f"{app.memory_mib} MB of memory",
            "InstanceID": "2",
            "ResourceType": str(MEMORY),
            "VirtualQuantity": str(app.memory_mib),
        },
    )
    # The cloud kernel drives VMware's paravirtual devices, not LSI Logic or E1000.
    _item(
        hardware,
        {
            "Address": "0",
            "Description": "SCSI Controller",
            "ElementName": "SCSI Controller 0",
            "InstanceID": "3",
            "ResourceSubType": "VirtualSCSI",
            "ResourceType": str(SCSI_CONTROLLER),
        },
    )
    _item(
        hardware,
        {
            "AddressOnParent": "0",
            "ElementName": "Hard Disk 1",
            "HostResource": "ovf:/disk/vmdisk1",
            "InstanceID": "4",
            "Parent": "3",
            "ResourceType": str(DISK_DRIVE),
        },
    )
    _item(
        hardware,
        {
            "AddressOnParent": "7",
            "AutomaticAllocation": "true",
            "Connection": app.network,
            "Description": f'VmxNet3 ethernet adapter on "{app.network}"',
            "ElementName": "Network adapter 1",
            "InstanceID": "5",
            "ResourceSubType": "VmxNet3",
            "ResourceType": str(ETHERNET),
        },
    )
    _sub(
        hardware,
        f"{{{VMW}}}Config",
        **{_o("required"): "false", f"{{{VMW}}}key": "firmware", f"{{{VMW}}}value": "bios"},
    )
    ET.indent(envelope)
    return ET.tostring(envelope, encoding="utf-8", xml_declaration=True) + b"\n"


def sha1_of(path: Path) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def manifest(files: Sequence[Path]) -> str:
    """An OVF 1.x manifest: ``SHA1(name)= hex`` for each member."""
    return "".join(f"SHA1({path.name})= {sha1_of(path)}\n" for path in files)


def write_ova(ova: Path, descriptor_file: Path, manifest_file: Path, disks: Sequence[Path]) -> None:
    """The descriptor first (OVF section 5.3), then the manifest, then the disks; plain ustar."""
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as archive:
        for member in (descriptor_file, manifest_file, *disks):
            info = archive.gettarinfo(str(member), arcname=member.name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = 0o644
            with member.open("rb") as file:
                archive.addfile(info, file)
