"""Readers of the settings a hypervisor can hand to a new appliance, and their order."""

from __future__ import annotations

from passerelle.firstboot.metadata import Source
from passerelle.firstboot.paths import Paths
from passerelle.firstboot.sources import hyperv, jsonfile, vmware


def default_sources(paths: Paths, rpc: vmware.Rpc | None = None) -> list[Source]:
    """QEMU fw_cfg, a metadata file, VMware guestinfo, VMware OVF properties, Hyper-V KVP.

    The VMware readers run only on VMware (per SMBIOS), so vmware-rpctool is never probed
    elsewhere.
    """
    sources = [
        Source("qemu-fw-cfg", lambda: jsonfile.read_json_metadata(paths.fw_cfg_metadata)),
        Source("metadata-file", lambda: jsonfile.read_json_metadata(paths.metadata_file)),
    ]
    if vmware.is_vmware(paths):
        call = rpc or vmware.rpctool
        sources.append(Source("vmware-guestinfo", lambda: vmware.read_guestinfo(call)))
        sources.append(Source("vmware-ovf", lambda: vmware.read_ovf_environment(call)))
    sources.append(Source("hyperv-kvp", lambda: hyperv.read_kvp_pool(paths.kvp_pool)))
    return sources
