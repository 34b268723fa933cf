"""First boot's summary on the serial console: written to a real terminal, read back by the
boot test's parser, and never carrying a password the deployment supplied."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator

import pytest
from firstboot.firstboot_support import ApplianceRoot

from passerelle.firstboot.announce import Announcement, announce, parse_announcement
from passerelle.firstboot.certificate import fingerprint
from passerelle.firstboot.first_boot import run_first_boot
from passerelle.firstboot.identity import load_identity
from passerelle.firstboot.password import read_initial_password
from passerelle.firstboot.sources import default_sources

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def serial_port(appliance: ApplianceRoot) -> Iterator[int]:
    """A pseudo-terminal standing in for /dev/ttyS0; yields the end the hypervisor reads."""
    reader, terminal = os.openpty()
    device = appliance.paths.serial_console
    device.parent.mkdir(parents=True, exist_ok=True)
    device.symlink_to(os.ttyname(terminal))
    yield reader
    os.close(reader)
    os.close(terminal)


def _read_all(fd: int) -> str:
    os.set_blocking(fd, False)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_a_generated_password_is_announced_with_the_first_boot_facts(
    appliance: ApplianceRoot, serial_port: int
) -> None:
    run_first_boot(appliance.paths, appliance.system(), default_sources(appliance.paths), NOW)
    console = _read_all(serial_port)
    facts = parse_announcement("kernel noise\r\n" + console)
    identity = load_identity(appliance.paths)
    assert identity is not None
    assert facts == {
        "url": "https://192.168.1.101/",
        "hostname": "passerelle",
        "serial": identity.serial,
        "certificate-sha256": fingerprint(appliance.paths.management_cert),
        "admin-password": read_initial_password(appliance.paths),
    }


def test_a_deployment_password_is_never_announced(
    appliance: ApplianceRoot, serial_port: int
) -> None:
    appliance.set_fw_cfg(
        {"ip": "10.1.2.3/24", "hostname": "lb7", "admin_password": "Supplied-Secret-9"}
    )
    run_first_boot(appliance.paths, appliance.system(), default_sources(appliance.paths), NOW)
    console = _read_all(serial_port)
    assert "Supplied-Secret-9" not in console
    facts = parse_announcement(console)
    assert facts["url"] == "https://10.1.2.3/" and facts["hostname"] == "lb7"
    assert "admin-password" not in facts


def test_no_serial_port_is_no_error(appliance: ApplianceRoot) -> None:
    report = run_first_boot(
        appliance.paths, appliance.system(), default_sources(appliance.paths), NOW
    )
    assert report is not None
    assert not appliance.paths.serial_console.exists()


def test_a_serial_port_that_refuses_writes_is_skipped(appliance: ApplianceRoot) -> None:
    device = appliance.paths.serial_console
    device.parent.mkdir(parents=True)
    device.mkdir()  # opening a directory for writing fails as a missing UART does
    summary = Announcement("https://192.168.1.101/", "passerelle", "PSL-AAAA", "AB:CD", None)
    assert announce(appliance.paths, summary) is False


def test_the_last_announcement_wins_whole() -> None:
    log = (
        "PASSERELLE-FIRSTBOOT: url https://192.168.1.101/\n"
        "PASSERELLE-FIRSTBOOT: admin-password OLD1-OLD2-OLD3-OLD4\n"
        "[   12.3] random: crng init done\n"
        "garbage PASSERELLE-FIRSTBOOT: url https://10.0.0.5/\r\n"
        "PASSERELLE-FIRSTBOOT: serial PSL-ABCDEFGHJKMN\r\n"
        "PASSERELLE-FIRSTBOOT: lonely\n"
    )
    assert parse_announcement(log) == {"url": "https://10.0.0.5/", "serial": "PSL-ABCDEFGHJKMN"}
