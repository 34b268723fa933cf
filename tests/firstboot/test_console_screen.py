"""The main screen keeps to an 80x25 console whatever it has to show."""

from __future__ import annotations

import datetime as dt
import ipaddress

from passerelle.firstboot.console.screen import main_screen
from passerelle.firstboot.facts import Facts
from passerelle.firstboot.first_boot import Report
from passerelle.firstboot.identity import Identity
from passerelle.firstboot.interfaces import Interface
from passerelle.firstboot.licence import demo_licence
from passerelle.firstboot.network_state import NetworkState
from passerelle.firstboot.settings import NetworkSettings

NOW = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)


def test_widest_values_fit() -> None:
    settings = NetworkSettings(
        ipaddress.ip_interface("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff/64"),
        ipaddress.ip_address("fe80::1"),
        tuple(ipaddress.ip_address(f"2001:db8:aaaa:bbbb:cccc:dddd:eeee:{n}") for n in (1, 2, 3)),
    )
    hostname = "a" * 30 + "." + "b" * 33
    facts = Facts(
        version="0.1.0",
        network=NetworkState(
            settings, hostname, Interface("enx0123456789ab"), "vmware-guestinfo", ("n",)
        ),
        identity=Identity("PSL-ABCDEFGHJKLM", "random", NOW, "0.1.0"),
        licence=demo_licence(NOW, NOW),
        ha_state="x" * 60,
        certificate_sha256=None,
        report=Report(NOW, "vmware-guestinfo", "generated", ()),
        initial_password="ABCD-EFGH-JKMN-PQRS",
        initial_password_pending=True,
    )
    lines = main_screen(facts, "m" * 200)
    assert len(lines) + 1 <= 25  # and the prompt line
    assert all(len(line) < 80 for line in lines)
    screen = "\n".join(lines)
    assert "https://[2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff]/" in screen
    assert "admin / ABCD-EFGH-JKMN-PQRS" in screen
