"""The readers of hypervisor settings: QEMU fw_cfg and metadata.json, VMware guestinfo and
OVF environment, Hyper-V KVP pool files, and the order in which they are consulted."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from firstboot.firstboot_support import ApplianceRoot

from passerelle.firstboot.metadata import Metadata, Source, SourceError, collect, normalise
from passerelle.firstboot.sources import default_sources, hyperv, jsonfile, vmware

FIXTURES = Path(__file__).parent / "fixtures"


def kvp_record(key: str, value: str) -> bytes:
    """One record as hv_kvp_daemon stores it: NUL-padded 512-byte key, 2048-byte value."""
    return key.encode().ljust(hyperv.KEY_SIZE, b"\0") + value.encode().ljust(
        hyperv.VALUE_SIZE, b"\0"
    )


class FakeRpc:
    """vmware-rpctool's answers from a dict of guestinfo variables."""

    def __init__(self, variables: dict[str, str]) -> None:
        self.variables = dict(variables)
        self.queries: list[str] = []

    def __call__(self, query: str) -> str | None:
        self.queries.append(query)
        verb, _, rest = query.partition(" ")
        if verb == "info-get":
            return self.variables.get(rest)
        if verb == "info-set":
            name, _, value = rest.partition(" ")
            self.variables[name] = value
            return ""
        return None


def test_ovf_environment_properties() -> None:
    properties = vmware.parse_ovf_environment((FIXTURES / "ovfenv.xml").read_text())
    assert properties["passerelle.ip"] == "10.20.30.40/24"
    assert properties["passerelle.admin_password"] == "S3cret & long"
    metadata = normalise(properties, "vmware-ovf")
    assert metadata.values == {
        "ip": "10.20.30.40/24",
        "gateway": "10.20.30.1",
        "dns": "10.20.30.53,10.20.30.54",
        "hostname": "lb-a.example.com",
        "admin_password": "S3cret & long",
    }


def test_ovf_environment_not_xml() -> None:
    with pytest.raises(SourceError, match="not XML"):
        vmware.parse_ovf_environment("<Environment><unclosed>")


def test_guestinfo_reads_keys_and_blanks_the_password() -> None:
    rpc = FakeRpc(
        {
            "guestinfo.passerelle.ip": "10.1.2.3/16",
            "guestinfo.passerelle.admin_password": "from-guestinfo",
        }
    )
    assert vmware.read_guestinfo(rpc) == {"ip": "10.1.2.3/16", "admin_password": "from-guestinfo"}
    assert rpc.variables["guestinfo.passerelle.admin_password"] == ""
    assert "info-get guestinfo.passerelle.gateway" in rpc.queries


def test_ovf_environment_through_rpc() -> None:
    rpc = FakeRpc({"guestinfo.ovfEnv": (FIXTURES / "ovfenv.xml").read_text()})
    assert vmware.read_ovf_environment(rpc)["passerelle.hostname"] == "lb-a.example.com"
    assert vmware.read_ovf_environment(FakeRpc({})) == {}


def test_rpctool_runs_the_vmware_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a stand-in vmware-rpctool that answers like the real one (status 1: "No value found")
    tool = tmp_path / "vmware-rpctool"
    tool.write_text(
        '#!/bin/sh\ncase "$1" in\n'
        '  "info-get guestinfo.passerelle.ip") echo 10.9.8.7/24 ;;\n'
        '  *) echo "No value found"; exit 1 ;;\nesac\n'
    )
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert vmware.rpctool("info-get guestinfo.passerelle.ip") == "10.9.8.7/24"
    assert vmware.rpctool("info-get guestinfo.passerelle.gateway") is None


def test_rpctool_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert vmware.rpctool("info-get guestinfo.ovfEnv") is None


def test_kvp_pool_records(tmp_path: Path) -> None:
    pool = tmp_path / ".kvp_pool_0"
    pool.write_bytes(
        kvp_record("passerelle.ip", "172.16.5.10/24")
        + kvp_record("passerelle.dns", "172.16.5.53")
        + kvp_record("", "")  # a freed slot
        + kvp_record("passerelle.hostname", "hv-lb1")
    )
    assert hyperv.read_kvp_pool(pool) == {
        "passerelle.ip": "172.16.5.10/24",
        "passerelle.dns": "172.16.5.53",
        "passerelle.hostname": "hv-lb1",
    }
    assert hyperv.read_kvp_pool(tmp_path / "absent") is None


def test_kvp_value_fills_its_whole_field() -> None:
    value = "x" * hyperv.VALUE_SIZE  # no NUL at all
    assert hyperv.parse_kvp_pool(kvp_record("k", value)) == {"k": value}


def test_kvp_pool_truncated_record_refused() -> None:
    with pytest.raises(SourceError, match="whole number"):
        hyperv.parse_kvp_pool(kvp_record("passerelle.ip", "10.0.0.1/24")[:-1])


def test_json_metadata_file(tmp_path: Path) -> None:
    path = tmp_path / "metadata.json"
    assert jsonfile.read_json_metadata(path) is None
    path.write_text(json.dumps({"ip": "10.0.0.7/24", "dns": ["10.0.0.53"]}))
    assert jsonfile.read_json_metadata(path) == {"ip": "10.0.0.7/24", "dns": ["10.0.0.53"]}
    path.write_text("[1, 2]")
    with pytest.raises(SourceError, match="JSON object"):
        jsonfile.read_json_metadata(path)
    path.write_text("{nope")
    with pytest.raises(SourceError, match="not JSON"):
        jsonfile.read_json_metadata(path)


def test_normalise_keys_and_lists() -> None:
    metadata = normalise(
        {
            "Passerelle.IP": " 10.0.0.9/24 ",
            "dns": ["a", " ", "b"],
            "admin-password": " pw  x ",
            "other": "x",
            "hostname": "",
        },
        "test",
    )
    assert metadata.values == {"ip": "10.0.0.9/24", "dns": ["a", "b"], "admin_password": " pw  x "}
    assert metadata.get("dns") == "a b"


def test_collect_takes_the_first_source_with_settings_and_never_mixes() -> None:
    def broken() -> dict[str, object]:
        raise SourceError("garbled")

    sources = [
        Source("empty", lambda: None),
        Source("broken", broken),
        Source("unrelated", lambda: {"colour": "blue"}),
        Source("first", lambda: {"ip": "10.0.0.1/24"}),
        Source("second", lambda: {"ip": "10.0.0.2/24", "gateway": "10.0.0.254"}),
    ]
    assert collect(sources) == Metadata("first", {"ip": "10.0.0.1/24"})
    assert collect(sources[:3]) is None


def test_default_sources_order_and_vmware_only_on_vmware(appliance: ApplianceRoot) -> None:
    names = [source.name for source in default_sources(appliance.paths)]
    assert names == ["qemu-fw-cfg", "metadata-file", "hyperv-kvp"]
    appliance.set_dmi("VMware, Inc.")
    rpc = FakeRpc({"guestinfo.passerelle.ip": "10.3.3.3/24"})
    sources = default_sources(appliance.paths, rpc=rpc)
    assert [s.name for s in sources] == [
        "qemu-fw-cfg",
        "metadata-file",
        "vmware-guestinfo",
        "vmware-ovf",
        "hyperv-kvp",
    ]
    assert collect(sources) == Metadata("vmware-guestinfo", {"ip": "10.3.3.3/24"})
    # fw_cfg (the zero-touch QEMU path) comes first
    appliance.set_fw_cfg({"ip": "10.4.4.4/24"})
    assert collect(sources) == Metadata("qemu-fw-cfg", {"ip": "10.4.4.4/24"})


def test_kvp_through_default_sources(appliance: ApplianceRoot) -> None:
    appliance.paths.kvp_pool.parent.mkdir(parents=True)
    appliance.paths.kvp_pool.write_bytes(kvp_record("passerelle.ip", "10.5.5.5/24"))
    assert collect(default_sources(appliance.paths)) == Metadata(
        "hyperv-kvp", {"ip": "10.5.5.5/24"}
    )
