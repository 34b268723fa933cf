"""`passerelle deploy vsphere` against govmomi's vCenter simulator, with the appliances' API
played by fake HTTPS servers on the loopback addresses the guests report."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from provisioning_appliance import FakeAppliance, start_pair
from provisioning_guest import GuestAgent
from provisioning_vcsim import Vcsim
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from passerelle.cli import main
from passerelle.provisioning.vsphere.properties import objects_of_type, properties, wait_for_task

PASSWORD = "Appliance-Pass1"
ADDRESSES = ["127.0.70.11", "127.0.70.12"]


@pytest.fixture
def guest(vcsim: Vcsim) -> Iterator[GuestAgent]:
    agent = GuestAgent(vcsim.host, vcsim.port, vcsim.user, vcsim.password)
    yield agent
    agent.stop()


@pytest.fixture
def appliances() -> Iterator[tuple[list[FakeAppliance], int]]:
    started, port = start_pair(ADDRESSES, PASSWORD)
    yield started, port
    for appliance in started:
        appliance.stop()


@pytest.fixture
def inventory(vcsim: Vcsim) -> Iterator[Any]:
    service = SmartConnect(
        host=vcsim.host,
        port=vcsim.port,
        user=vcsim.user,
        pwd=vcsim.password,
        disableSslCertValidation=True,
    )
    yield service
    Disconnect(service)


def vms(service: Any) -> dict[str, dict[str, Any]]:
    found = objects_of_type(
        service,
        service.content.rootFolder,
        vim.VirtualMachine,
        ["name", "config.extraConfig", "runtime.powerState", "runtime.host", "config.hardware"],
    )
    result = {}
    for vm, props in found:
        props["extra"] = {o.key: o.value for o in props.get("config.extraConfig") or []}
        props["vm"] = vm
        result.setdefault(props["name"], []).append(props)
    return {name: entries[0] | {"count": len(entries)} for name, entries in result.items()}


def deploy(vcsim: Vcsim, ova: Path, *extra: str, password: str | None = None) -> list[str]:
    return [
        "deploy",
        "vsphere",
        "--server",
        vcsim.server,
        "--user",
        vcsim.user,
        "--password",
        password or vcsim.password,
        "--insecure",
        "--datastore",
        "LocalDS_0",
        "--network",
        "VM Network",
        "--ova",
        str(ova),
        "--timeout",
        "20",
        "--poll-interval",
        "0.1",
        *extra,
    ]


def pair_args(port: int) -> list[str]:
    return [
        "--cluster",
        "DC0_C0",
        "--name",
        "edge",
        "--ip",
        f"{ADDRESSES[0]}/8,{ADDRESSES[1]}/8",
        "--gateway",
        "127.0.0.1",
        "--dns",
        "127.0.0.53,127.0.0.54",
        "--admin-password",
        PASSWORD,
        "--api-port",
        str(port),
    ]


def test_pair_in_a_cluster_is_imported_configured_kept_apart_started_and_paired(
    vcsim: Vcsim, test_ova: Path, guest: GuestAgent, appliances: Any, inventory: Any, capsys: Any
) -> None:
    (primary, secondary), port = appliances
    assert main(deploy(vcsim, test_ova, *pair_args(port))) == 0
    out = capsys.readouterr().out
    assert f"edge-a\tprimary\thttps://{ADDRESSES[0]}:{port}/api/v1\tcreated" in out
    assert f"edge-b\tsecondary\thttps://{ADDRESSES[1]}:{port}/api/v1\tcreated" in out
    assert "HA pairing: paired" in out
    assert "admin password (generated" not in out

    found = vms(inventory)
    a, b = found["edge-a"], found["edge-b"]
    for props, address, name in ((a, ADDRESSES[0], "edge-a"), (b, ADDRESSES[1], "edge-b")):
        assert props["runtime.powerState"] == "poweredOn"
        extra = props["extra"]
        assert extra["guestinfo.passerelle.ip"] == f"{address}/8"
        assert extra["guestinfo.passerelle.gateway"] == "127.0.0.1"
        assert extra["guestinfo.passerelle.dns"] == "127.0.0.53,127.0.0.54"
        assert extra["guestinfo.passerelle.hostname"] == name
        assert extra["guestinfo.passerelle.admin_password"] == PASSWORD
        assert extra["passerelle.deployment"].startswith("edge/")
        devices = props["config.hardware"].device
        assert any(isinstance(d, vim.vm.device.ParaVirtualSCSIController) for d in devices)
        assert any(isinstance(d, vim.vm.device.VirtualVmxnet3) for d in devices)
        assert any(isinstance(d, vim.vm.device.VirtualDisk) for d in devices)
    assert a["runtime.host"] != b["runtime.host"]

    cluster = next(
        obj
        for obj, p in objects_of_type(
            inventory, inventory.content.rootFolder, vim.ClusterComputeResource, ["name"]
        )
        if p["name"] == "DC0_C0"
    )
    rules = properties(inventory, cluster, ["configurationEx"])["configurationEx"].rule
    rule = next(r for r in rules if r.name == "edge-anti-affinity")
    assert isinstance(rule, vim.cluster.AntiAffinityRuleSpec)
    assert {vm._moId for vm in rule.vm} == {a["vm"]._moId, b["vm"]._moId}

    assert [r["method"] for r in secondary.requests] == ["GET"]
    (pairing,) = primary.pair_requests()
    assert pairing["authorized"]
    assert pairing["body"]["peer_api_url"] == f"https://{ADDRESSES[1]}:{port}/api/v1"
    assert pairing["body"]["peer_password"] == PASSWORD


def test_running_again_finds_the_vms_and_does_not_duplicate_them(
    vcsim: Vcsim, test_ova: Path, guest: GuestAgent, appliances: Any, inventory: Any, capsys: Any
) -> None:
    _, port = appliances
    assert main(deploy(vcsim, test_ova, *pair_args(port))) == 0
    capsys.readouterr()
    assert main(deploy(vcsim, test_ova, *pair_args(port))) == 0
    captured = capsys.readouterr()
    assert "edge-a\tprimary" in captured.out and "\texisting" in captured.out
    assert "created" not in captured.out
    assert "edge-a: exists (running)" in captured.err
    found = vms(inventory)
    assert found["edge-a"]["count"] == 1 and found["edge-b"]["count"] == 1
    assert len([n for n in found if n.startswith("edge")]) == 2
    assert "already in place" in captured.err


def test_rerun_after_an_interrupted_run_continues_from_the_powered_off_vm(
    vcsim: Vcsim, test_ova: Path, guest: GuestAgent, inventory: Any, capsys: Any
) -> None:
    started, port = start_pair(ADDRESSES[:1], PASSWORD)
    try:
        args = [
            "--single", "--hosts", "DC0_H0", "--name", "solo",
            "--ip", f"{ADDRESSES[0]}/8", "--admin-password", PASSWORD, "--api-port", str(port),
        ]  # fmt: skip
        assert main(deploy(vcsim, test_ova, *args)) == 0
        vm = vms(inventory)["solo"]["vm"]
        wait_for_task(inventory, vm.PowerOffVM_Task(), "power off")
        capsys.readouterr()
        assert main(deploy(vcsim, test_ova, *args)) == 0
        captured = capsys.readouterr()
        assert "solo: exists (powered off)" in captured.err
        assert "solo: powering on" in captured.err
        found = vms(inventory)
        assert found["solo"]["count"] == 1
        assert found["solo"]["runtime.powerState"] == "poweredOn"
    finally:
        started[0].stop()


def test_single_appliance_gets_a_generated_password_that_is_printed(
    vcsim: Vcsim, test_ova: Path, guest: GuestAgent, inventory: Any, capsys: Any
) -> None:
    started, port = start_pair(ADDRESSES[:1], "unknown-yet")
    try:
        args = ["--single", "--hosts", "DC0_H0", "--name", "solo", "--ip", f"{ADDRESSES[0]}/8"]
        assert main(deploy(vcsim, test_ova, *args, "--api-port", str(port))) == 0
    finally:
        started[0].stop()
    out = capsys.readouterr().out
    password = out.split("admin password (generated, keep it safe): ")[1].split()[0]
    assert len(password) >= 16
    found = vms(inventory)["solo"]
    assert found["extra"]["guestinfo.passerelle.admin_password"] == password
    assert "guestinfo.passerelle.gateway" not in found["extra"]
    assert "HA pairing" not in out


def test_pairing_not_available_is_a_warning_not_a_failure(
    vcsim: Vcsim, test_ova: Path, guest: GuestAgent, capsys: Any
) -> None:
    started, port = start_pair(ADDRESSES, PASSWORD, pair_status=404)
    try:
        assert main(deploy(vcsim, test_ova, *pair_args(port))) == 0
    finally:
        for appliance in started:
            appliance.stop()
    captured = capsys.readouterr()
    assert "HA pairing: unavailable: pairing not available on this appliance version" in (
        captured.out
    )
    assert "warning: pairing not available" in captured.err


def test_wrong_password_says_to_check_the_credentials(
    vcsim: Vcsim, test_ova: Path, capsys: Any
) -> None:
    args = deploy(vcsim, test_ova, "--cluster", "DC0_C0", "--single", password="wrong")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"rejected the login of {vcsim.user!r}" in err
    assert "--password" in err


def test_missing_datastore_is_named_with_the_ones_available(
    vcsim: Vcsim, test_ova: Path, inventory: Any, capsys: Any
) -> None:
    args = deploy(vcsim, test_ova, "--cluster", "DC0_C0", "--single")
    args[args.index("LocalDS_0")] = "NoSuchDS"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--datastore 'NoSuchDS': not found" in err and "LocalDS_0" in err
    assert "passerelle" not in vms(inventory)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--network", "NoSuchNet", "--network 'NoSuchNet': not found"),
        ("--cluster", "NoSuchCluster", "--cluster 'NoSuchCluster': not found"),
        ("--hosts", "NoSuchHost", "--hosts 'NoSuchHost': no such host"),
        ("--datacenter", "DC9", "--datacenter 'DC9': not found"),
    ],
)
def test_missing_inventory_is_reported(
    vcsim: Vcsim, test_ova: Path, capsys: Any, option: str, value: str, message: str
) -> None:
    args = deploy(vcsim, test_ova, "--single")
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    if option != "--cluster" and "--hosts" not in args:
        args += ["--cluster", "DC0_C0"]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_a_vm_of_the_same_name_not_made_by_passerelle_is_left_alone(
    vcsim: Vcsim, test_ova: Path, inventory: Any, capsys: Any
) -> None:
    before = vms(inventory)["DC0_H0_VM0"]
    args = deploy(vcsim, test_ova, "--hosts", "DC0_H0", "--single", "--name", "DC0_H0_VM0")
    assert main(args) == 2
    assert "not deployed by Passerelle" in capsys.readouterr().err
    after = vms(inventory)["DC0_H0_VM0"]
    assert after["count"] == 1 and after["extra"] == before["extra"]
