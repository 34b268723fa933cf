"""The parts of `passerelle deploy` that need no hypervisor: options, plan, pairing answers."""

from __future__ import annotations

from typing import Any

import pytest
from provisioning_appliance import start_pair

from passerelle.cli import main
from passerelle.provisioning.appliance_api import Credentials, api_url
from passerelle.provisioning.errors import DeployError
from passerelle.provisioning.pairing import ApiPairing
from passerelle.provisioning.settings import plan_deployment


@pytest.mark.parametrize(
    "argv", [["deploy"], ["deploy", "vsphere"], ["deploy", "hyperv"]], ids=" ".join
)
def test_every_sub_command_has_help(argv: list[str], capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    assert "usage: passerelle deploy" in capsys.readouterr().out


def test_pair_is_named_and_addressed() -> None:
    plan = plan_deployment("lb", True, ["10.0.0.11/24,10.0.0.12/24"], "10.0.0.1", "10.0.0.2", None)
    a, b = plan.appliances
    assert (a.name, a.role, b.name, b.role) == ("lb-a", "primary", "lb-b", "secondary")
    assert a.settings.keys() == {
        "guestinfo.passerelle.hostname": "lb-a",
        "guestinfo.passerelle.admin_password": a.settings.admin_password,
        "guestinfo.passerelle.ip": "10.0.0.11/24",
        "guestinfo.passerelle.gateway": "10.0.0.1",
        "guestinfo.passerelle.dns": "10.0.0.2",
    }
    assert plan.password_generated and a.settings.admin_password == b.settings.admin_password


@pytest.mark.parametrize(
    ("pair", "ips", "gateway", "dns", "message"),
    [
        (True, [], None, None, "an HA pair needs two addresses"),
        (True, ["10.0.0.11/24"], None, None, "expected two addresses"),
        (False, ["10.0.0.11"], None, None, "give the prefix length too"),
        (True, ["10.0.0.11/24", "10.0.0.11/24"], None, None, "two different addresses"),
        (False, ["10.0.0.11/24"], "10.0.1.1", None, "outside 10.0.0.0/24"),
        (False, ["10.0.0.11/24"], "10.0.0.1", "dns.example", "--dns dns.example"),
    ],
)
def test_bad_settings_say_what_to_fix(
    pair: bool, ips: list[str], gateway: str | None, dns: str | None, message: str
) -> None:
    with pytest.raises(DeployError, match=message.replace(".", r"\.")):
        plan_deployment("lb", pair, ips, gateway, dns, "Long-enough1")


def test_cli_reports_bad_settings_on_stderr_before_connecting(capsys: Any) -> None:
    argv = ["deploy", "vsphere", "--server", "127.0.0.1:9", "--user", "u", "--password", "p"]
    argv += ["--datastore", "d", "--network", "n", "--ova", "x.ova", "--cluster", "c"]
    assert main([*argv, "--ip", "10.0.0.11/24"]) == 2
    err = capsys.readouterr().err
    assert "--ip: expected two addresses (one per appliance), got 1" in err
    assert "cannot connect" not in err


@pytest.mark.parametrize(
    ("status", "state"), [(200, "paired"), (409, "already-paired"), (404, "unavailable")]
)
def test_pairing_answers(status: int, state: str) -> None:
    (appliance,), port = start_pair(["127.0.72.11"], "Pairing-Pass1", pair_status=status)
    try:
        url = api_url("127.0.72.11", port)
        result = ApiPairing().pair(
            url, api_url("127.0.72.12", port), Credentials("admin", "Pairing-Pass1")
        )
    finally:
        appliance.stop()
    assert result.state == state
    assert appliance.pair_requests()[0]["authorized"]


def test_pairing_with_the_wrong_password_is_an_error() -> None:
    (appliance,), port = start_pair(["127.0.72.11"], "Pairing-Pass1")
    try:
        with pytest.raises(DeployError, match="another admin password"):
            ApiPairing().pair(
                api_url("127.0.72.11", port), "https://x/api/v1", Credentials("admin", "wrong-pass")
            )
    finally:
        appliance.stop()
