"""The first boot's summary on the serial console.

The VM console (tty1) shows where to browse and the generated admin password; a headless
deployment, or the boot test, only has the hypervisor's serial port. So first boot writes the
same facts there once, as ``PASSERELLE-FIRSTBOOT: <key> <value>`` lines that people and
scripts can read alike (as the image build's ``PASSERELLE-SEAL:`` line). A password the
deployment supplied is never written: whoever supplied it knows it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

from passerelle.firstboot.paths import Paths

log = logging.getLogger("passerelle.firstboot")

MARK = "PASSERELLE-FIRSTBOOT:"


@dataclass(frozen=True)
class Announcement:
    url: str
    hostname: str
    serial: str
    certificate_sha256: str
    admin_password: str | None  # only a generated one

    def lines(self) -> list[str]:
        lines = [
            f"{MARK} url {self.url}",
            f"{MARK} hostname {self.hostname}",
            f"{MARK} serial {self.serial}",
            f"{MARK} certificate-sha256 {self.certificate_sha256}",
        ]
        if self.admin_password is not None:
            lines.append(f"{MARK} admin-password {self.admin_password}")
        return lines


def announce(paths: Paths, announcement: Announcement) -> bool:
    """Write the summary to the first serial port; False when there is none to write to."""
    device = paths.serial_console
    if not device.exists():
        return False
    text = "\r\n" + "\r\n".join(announcement.lines()) + "\r\n"
    try:
        # O_NONBLOCK: a serial port without carrier must not hang the boot; O_NOCTTY: a
        # oneshot service must not acquire the port as its controlling terminal.
        fd = os.open(device, os.O_WRONLY | os.O_APPEND | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:  # EIO: the hypervisor gave the VM no serial port
        log.info("no serial console summary (%s: %s)", device, exc.strerror)
        return False
    try:
        os.write(fd, text.encode("utf-8"))
    except OSError as exc:
        log.info("no serial console summary (%s: %s)", device, exc.strerror)
        return False
    finally:
        os.close(fd)
    return True


def parse_announcement(console: str) -> dict[str, str]:
    """The facts of the last announcement in a serial console log (key -> value)."""
    facts: dict[str, str] = {}
    for key, value in _entries(console):
        if key == "url":  # each announcement starts with its url: a later one wins whole
            facts = {}
        facts[key] = value
    return facts


def _entries(console: str) -> Iterator[tuple[str, str]]:
    for line in console.splitlines():
        start = line.find(MARK)
        if start < 0:
            continue
        key, _, value = line[start + len(MARK) :].strip().partition(" ")
        if key and value:
            yield key, value.strip()
