"""``passerelle console`` driven through tmux at 80x25 with TERM=linux, as a person would:
read the screen, type answers, check what is shown and what is written under the root."""

from __future__ import annotations

import datetime as dt
import json
import stat
from collections.abc import Callable

import pytest
from firstboot.firstboot_support import ApplianceRoot, Console

from passerelle.firstboot.first_boot import run_first_boot
from passerelle.firstboot.sources import default_sources

MAIN = "Choose 1-4, or R to refresh:"

StartConsole = Callable[..., Console]


@pytest.fixture
def booted(appliance: ApplianceRoot) -> ApplianceRoot:
    run_first_boot(appliance.paths, appliance.system(), default_sources(appliance.paths))
    appliance.paths.recorded_actions.unlink()
    return appliance


def test_main_screen(booted: ApplianceRoot, console_at: StartConsole) -> None:
    serial = json.loads(booted.paths.identity.read_text())["serial"]
    password = booted.paths.initial_password.read_text().strip()
    console = console_at(booted.path)
    screen = console.wait_for(MAIN)
    lines = screen.splitlines()
    assert len(lines) <= 25 and all(len(line) <= 80 for line in lines)
    assert "Passerelle 0.1.0" in lines[0]
    assert "Browse to   https://192.168.1.101/" in screen
    assert f"Serial number   {serial}" in screen
    assert "Licence         demo, 30 days left" in screen
    assert "HA              standalone" in screen
    assert f"admin / {password}" in screen
    assert "192.168.1.101/24 on ens192 (default)" in screen


def test_licence_days_ha_state_and_password_follow_the_files(
    booted: ApplianceRoot, console_at: StartConsole
) -> None:
    identity = json.loads(booted.paths.identity.read_text())
    started = dt.datetime.now(dt.UTC) - dt.timedelta(days=27, hours=1)
    identity["first_boot"] = started.isoformat()
    booted.paths.identity.write_text(json.dumps(identity))
    booted.paths.ha_state.write_text("standby\n")
    booted.paths.initial_password.unlink()  # the management plane consumed and retired it
    console = console_at(booted.path, refresh=0.3)
    screen = console.wait_for("3 days left")
    assert "HA              standby" in screen
    assert "admin (password set)" in screen
    # redrawn on its own: an expired demo is shown without anyone pressing a key
    identity["first_boot"] = (started - dt.timedelta(days=5)).isoformat()
    booted.paths.identity.write_text(json.dumps(identity))
    console.wait_for("demo licence expired on")


def test_network_wizard_refuses_bad_input_then_applies(
    booted: ApplianceRoot, console_at: StartConsole
) -> None:
    console = console_at(booted.path)
    console.answer(MAIN, "1")
    console.answer("Address/prefix [192.168.1.101/24]:", "10.0.0.300/24")
    console.wait_for("'10.0.0.300' is not an IPv4 or IPv6 address")
    console.answer("Address/prefix [192.168.1.101/24]:", "10.0.0.5")
    console.answer("Netmask or prefix length [255.255.255.0]:", "255.0.255.0")
    console.wait_for("netmask 255.0.255.0 is not contiguous")
    console.answer("Address/prefix [192.168.1.101/24]:", "10.0.0.5")
    console.answer("Netmask or prefix length [255.255.255.0]:", "255.255.255.0")
    console.answer("Gateway [none]:", "10.0.1.1")
    console.wait_for("gateway 10.0.1.1 is outside 10.0.0.0/24")
    console.answer("Gateway [none]:", "10.0.0.1")
    console.answer("DNS servers (up to 3) [none]:", "10.0.0.53, 10.0.0.54")
    screen = console.wait_for("Apply now? [y/N]:")
    assert "New settings: 10.0.0.5/24, gateway 10.0.0.1, DNS 10.0.0.53 10.0.0.54" in screen
    # nothing is written before the confirmation
    assert "Address=192.168.1.101/24" in booted.paths.networkd_file.read_text()
    assert booted.recorded() == []
    console.answer("Apply now? [y/N]:", "y")

    screen = console.wait_for("Network applied. Browse to https://10.0.0.5/")
    assert "Browse to   https://10.0.0.5/" in screen
    assert "10.0.0.5/24 on ens192 (console)" in screen
    network = booted.paths.networkd_file.read_text()
    assert "Name=ens192" in network
    assert "Address=10.0.0.5/24\nGateway=10.0.0.1\nDNS=10.0.0.53\nDNS=10.0.0.54\n" in network
    assert booted.recorded() == [
        ["networkctl", "reload"],
        ["networkctl", "reconfigure", "ens192"],
        ["systemctl", "restart", "passerelle.service"],
    ]


def test_network_wizard_cancel_changes_nothing(
    booted: ApplianceRoot, console_at: StartConsole
) -> None:
    before = booted.paths.networkd_file.read_text()
    console = console_at(booted.path)
    console.answer(MAIN, "1")
    console.answer("Address/prefix [192.168.1.101/24]:", "172.16.0.2/12")
    console.answer("Gateway [none]:", "")
    console.answer("DNS servers (up to 3) [none]:", "")
    console.answer("Apply now? [y/N]:", "")
    console.wait_for("Network change cancelled; nothing changed.")
    console.answer(MAIN, "1")
    console.answer("Address/prefix [192.168.1.101/24]:", "10.1.1.1/8")
    console.keys("C-c")
    console.wait_for("Cancelled; nothing changed.")
    assert booted.paths.networkd_file.read_text() == before
    assert booted.recorded() == []


def test_hostname(booted: ApplianceRoot, console_at: StartConsole) -> None:
    console = console_at(booted.path)
    console.answer(MAIN, "2")
    console.answer("Hostname [passerelle]:", "lb_01")
    console.wait_for("'lb_01': only letters a-z, digits and hyphens are allowed")
    console.answer("Hostname [passerelle]:", "LB-01.example.com")
    screen = console.wait_for("Hostname set to lb-01.example.com.")
    assert "Hostname        lb-01.example.com" in screen
    assert booted.paths.hostname_file.read_text() == "lb-01.example.com\n"
    assert booted.recorded() == [["hostnamectl", "set-hostname", "lb-01.example.com"]]


def test_admin_password_is_hidden_checked_and_handed_over(
    booted: ApplianceRoot, console_at: StartConsole
) -> None:
    console = console_at(booted.path)
    console.answer(MAIN, "3")
    console.answer("New admin password:", "short")
    console.answer("Same password again:", "short")
    screen = console.wait_for("the password needs at least 8 characters")
    assert "short" not in screen  # typed, never echoed
    console.answer("New admin password:", "first-attempt-1")
    console.answer("Same password again:", "first-attempt-2")
    assert "first-attempt" not in console.wait_for("the two entries differ")
    console.answer("New admin password:", "Corr3ct horse battery")
    console.answer("Same password again:", "Corr3ct horse battery")
    screen = console.wait_for("Admin password changed")
    assert "admin (password set)" in screen
    reset = booted.paths.password_reset
    assert reset.read_text() == "Corr3ct horse battery\n"
    assert stat.S_IMODE(reset.stat().st_mode) == 0o600
    assert not booted.paths.initial_password.exists()


def test_factory_reset_needs_the_word(booted: ApplianceRoot, console_at: StartConsole) -> None:
    console = console_at(booted.path)
    console.answer(MAIN, "4")
    console.answer("Type RESET to erase everything, Enter to cancel:", "yes")
    console.wait_for("Factory reset cancelled; nothing changed.")
    assert booted.paths.marker.exists()
    console.answer(MAIN, "4")
    console.answer("Type RESET to erase everything, Enter to cancel:", "RESET")
    console.wait_for("Restarting the appliance")
    console.wait_for("console exited with status 0")
    assert not booted.paths.marker.exists()
    assert not booted.paths.management_cert.exists()
    assert booted.paths.identity.exists()
    assert booted.recorded() == [
        ["systemctl", "stop", "passerelle.service"],
        ["systemctl", "reboot"],
    ]


def test_unknown_choice_and_console_before_first_boot(
    appliance: ApplianceRoot, console_at: StartConsole
) -> None:
    console = console_at(appliance.path)
    screen = console.wait_for(MAIN)
    assert "first boot has not completed" in screen
    assert "Serial number   not yet created" in screen
    console.answer(MAIN, "9")
    console.wait_for("'9' is not a choice.")
