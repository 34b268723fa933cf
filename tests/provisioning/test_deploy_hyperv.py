"""`passerelle deploy hyperv` through unmodified pywinrm (NTLM, message encryption) to a
WS-Management server fixture whose 'host' reads the PowerShell it is sent."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from provisioning_appliance import FakeAppliance, start_pair
from provisioning_hyperv_host import FakeHyperV, script_parts
from provisioning_wsman import WsmanServer

from passerelle.cli import main
from passerelle.provisioning.hyperv import scripts
from passerelle.provisioning.hyperv.winrm_runner import PowerShellRunner

USER, WINDOWS_PASSWORD = "LAB\\deployer", "Winrm-Secret1"
PASSWORD = "Appliance-Pass1"
ADDRESSES = ["127.0.71.11", "127.0.71.12"]
VHDX = "\\\\files\\images\\passerelle-1.0.vhdx"


@pytest.fixture
def hyperv() -> Iterator[tuple[FakeHyperV, WsmanServer]]:
    host = FakeHyperV(switches=["External", "Mgmt Switch"], sources=[VHDX])
    server = WsmanServer(host, "deployer", WINDOWS_PASSWORD)
    yield host, server
    server.stop()


@pytest.fixture
def appliances() -> Iterator[tuple[list[FakeAppliance], int]]:
    started, port = start_pair(ADDRESSES, PASSWORD)
    yield started, port
    for appliance in started:
        appliance.stop()


def args(server: WsmanServer, *extra: str, password: str = WINDOWS_PASSWORD) -> list[str]:
    return [
        "deploy", "hyperv", "--host", "127.0.0.1", "--winrm-port", str(server.port),
        "--user", USER, "--password", password, "--vhdx", VHDX, "--switch", "Mgmt Switch",
        "--timeout", "10", "--poll-interval", "0.05", "--admin-password", PASSWORD, *extra,
    ]  # fmt: skip


def pair(port: int) -> list[str]:
    return [
        "--name", "edge", "--ip", f"{ADDRESSES[0]}/8", "--ip", f"{ADDRESSES[1]}/8",
        "--gateway", "127.0.0.1", "--dns", "127.0.0.53", "--api-port", str(port),
    ]  # fmt: skip


def test_pair_is_created_configured_through_kvp_started_and_paired(
    hyperv: Any, appliances: Any, capsys: Any
) -> None:
    host, server = hyperv
    (primary, _), port = appliances
    assert main(args(server, *pair(port))) == 0
    captured = capsys.readouterr()
    assert f"edge-a\tprimary\thttps://{ADDRESSES[0]}:{port}/api/v1\tcreated" in captured.out
    assert "HA pairing: paired" in captured.out
    assert "both appliances go to host 127.0.0.1" in captured.err

    for name, address in (("edge-a", ADDRESSES[0]), ("edge-b", ADDRESSES[1])):
        vm = host.vms[name]
        assert vm.state == "Running"
        assert vm.notes.startswith("passerelle-deployment:edge/")
        assert vm.created["SwitchName"] == "Mgmt Switch"
        assert vm.created["MemoryBytes"] == 2048 * 1024 * 1024
        assert vm.created["ProcessorCount"] == 2
        assert vm.created["Source"] == VHDX
        assert vm.kvp == {
            "guestinfo.passerelle.hostname": name,
            "guestinfo.passerelle.admin_password": PASSWORD,
            "guestinfo.passerelle.ip": f"{address}/8",
            "guestinfo.passerelle.gateway": "127.0.0.1",
            "guestinfo.passerelle.dns": "127.0.0.53",
        }
    steps = host.steps()
    assert steps[:2] == ["inspect", "check-source"]
    assert steps.count("create") == 2 and steps.count("set-kvp") == 2 and steps.count("start") == 2
    create = next(script for step, _, script in host.scripts if step == "create")
    assert "New-VM -Name $VmName -Generation 2 -MemoryStartupBytes $MemoryBytes" in create
    assert "-EnableSecureBoot On -SecureBootTemplate 'MicrosoftUEFICertificateAuthority'" in create
    assert "Copy-Item -LiteralPath $Source" in create
    kvp = next(script for step, _, script in host.scripts if step == "set-kvp")
    assert "Msvm_KvpExchangeDataItem" in kvp and "AddKvpItems" in kvp

    received = server.state.received
    assert all(r.command == "powershell.exe" and "-EncodedCommand" in r.arguments for r in received)
    assert {r.codepage for r in received} == {"65001"}
    assert server.state.encrypted_messages > 0 and server.state.plaintext_messages == 0
    (pairing,) = primary.pair_requests()
    assert pairing["body"]["peer_api_url"] == f"https://{ADDRESSES[1]}:{port}/api/v1"


def test_running_again_creates_nothing_new(hyperv: Any, appliances: Any, capsys: Any) -> None:
    host, server = hyperv
    _, port = appliances
    assert main(args(server, *pair(port))) == 0
    before = len(host.steps())
    capsys.readouterr()
    assert main(args(server, *pair(port))) == 0
    again = host.steps()[before:]
    assert "create" not in again and "set-kvp" not in again and "start" not in again
    assert "\texisting" in capsys.readouterr().out


HOSTILE_NAMES = [
    "o'brien $(Remove-Item -Recurse C) `whoami` ; exit 0",
    "quote\u2019s \u2018typographic\u2019 $env_PATH @(1) ${x}",
    "new\nline' ; Stop-Computer ; '",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_values_cannot_inject_powershell(hyperv: Any, name: str, capsys: Any) -> None:
    host, server = hyperv
    started, port = start_pair(ADDRESSES[:1], PASSWORD)
    try:
        extra = ["--single", "--name", name, "--ip", f"{ADDRESSES[0]}/8", "--api-port", str(port)]
        status = main(args(server, *extra))
    finally:
        started[0].stop()
    if "\n" in name:
        assert status == 2  # control characters are refused before anything is sent
        assert host.scripts == []
        return
    assert status == 0, capsys.readouterr().err
    # Read back through PowerShell's literal rules, every value is exactly what was given...
    assert list(host.vms) == [name]
    assert host.vms[name].kvp["guestinfo.passerelle.hostname"]
    # ...and the script text apart from its assignments is the same as for a plain name.
    for _step, params, script in host.scripts:
        _, _, body = script_parts(script)
        assert name not in body
        if "VmName" in params:
            assert params["VmName"] == name


def test_hostile_names_render_to_literals_that_round_trip() -> None:
    from provisioning_hyperv_host import LiteralParser

    from passerelle.provisioning.hyperv.powershell import literal, quote

    for name in [*HOSTILE_NAMES, "", "'", "''", "\u201b\u201a"]:
        assert LiteralParser(quote(name)).parse() == name
    assert quote("it's") == "'it''s'"
    assert quote("a\u2019b") == "'a\u2019\u2019b'"
    value = {"k'": ["a", 1, True, None], "b": {"c": "$x"}}
    assert LiteralParser(literal(value)).parse() == value


def test_hyperv_errors_surface_as_messages(hyperv: Any, capsys: Any) -> None:
    host, server = hyperv
    host.fail["create"] = (
        "Hyper-V encountered an error trying to access an object on computer 'HV1' because "
        "the object was not found."
    )
    assert main(args(server, "--single", "--name", "edge")) == 2
    err = capsys.readouterr().err
    assert "127.0.0.1: creating VM 'edge' failed: Hyper-V encountered an error" in err


def test_unknown_switch_lists_the_available_ones(hyperv: Any, capsys: Any) -> None:
    host, server = hyperv
    command = args(server, "--single")
    command[command.index("Mgmt Switch")] = "Nope"
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "--switch 'Nope': no such virtual switch" in err and "Mgmt Switch" in err
    assert host.vms == {}


def test_unreadable_vhdx_is_reported_before_anything_is_created(hyperv: Any, capsys: Any) -> None:
    host, server = hyperv
    command = args(server, "--single")
    command[command.index(VHDX)] = "D:\\missing.vhdx"
    assert main(command) == 2
    assert "cannot read the VHDX D:\\missing.vhdx" in capsys.readouterr().err
    assert host.vms == {}


def test_wrong_windows_password(hyperv: Any, capsys: Any) -> None:
    host, server = hyperv
    assert main(args(server, "--single", password="wrong")) == 2
    err = capsys.readouterr().err
    assert "rejected the login of 'LAB\\\\deployer'" in err and "--password" in err
    assert host.scripts == []


def test_wsman_fault_is_reported(hyperv: Any, capsys: Any) -> None:
    _host, server = hyperv
    server.state.fault_on = "Create"
    assert main(args(server, "--single")) == 2
    assert "WinRM refused checking the host: Access is denied." in capsys.readouterr().err


def test_a_vm_not_made_by_passerelle_is_left_alone(hyperv: Any, capsys: Any) -> None:
    from provisioning_hyperv_host import FakeVm

    host, server = hyperv
    host.vms["edge"] = FakeVm("edge", notes="finance app", state="Running")
    assert main(args(server, "--single", "--name", "edge")) == 2
    assert "not deployed by Passerelle" in capsys.readouterr().err
    assert host.steps() == ["inspect"]


@pytest.mark.skipif(
    not all(os.environ.get(f"PASSERELLE_HYPERV_{v}") for v in ("HOST", "USER", "PASSWORD")),
    reason="set PASSERELLE_HYPERV_HOST/USER/PASSWORD to check against a real Hyper-V host",
)
def test_real_host_answers_the_inspection() -> None:
    """Read-only: runs the inspection script on a real host and checks the answer's shape."""
    runner = PowerShellRunner(
        os.environ["PASSERELLE_HYPERV_HOST"],
        os.environ["PASSERELLE_HYPERV_USER"],
        os.environ["PASSERELLE_HYPERV_PASSWORD"],
        https=os.environ.get("PASSERELLE_HYPERV_HTTPS") == "1",
        insecure=True,
    )
    found = runner.run(scripts.INSPECT, {"VmNames": ["passerelle-probe-absent"]}, "inspect")
    assert isinstance(found["switches"], list)
    assert found["vms"] == [{"name": "passerelle-probe-absent", "exists": False}]
