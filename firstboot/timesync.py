"""The clock's settings as the operating system keeps them: a systemd-timesyncd drop-in for the
NTP servers and /etc/localtime for the time zone."""

from __future__ import annotations

import os
from dataclasses import dataclass

from passerelle.firstboot.files import read_first_line, write_atomically
from passerelle.firstboot.networkd import HEADER
from passerelle.firstboot.paths import Paths

DEFAULT_TIMEZONE = "UTC"
ZONEINFO_MARK = "zoneinfo/"


@dataclass(frozen=True)
class TimeSettings:
    timezone: str
    ntp_servers: tuple[str, ...]
    ntp_enabled: bool  # systemd-timesyncd is enabled


def render_timesyncd_dropin(servers: tuple[str, ...]) -> str:
    return HEADER + "[Time]\n" + f"NTP={' '.join(servers)}\n"


def write_timesyncd_dropin(paths: Paths, servers: tuple[str, ...]) -> None:
    if servers:
        write_atomically(paths.timesyncd_dropin, render_timesyncd_dropin(servers))
    else:
        # without our drop-in timesyncd falls back to the image's own configuration
        paths.timesyncd_dropin.unlink(missing_ok=True)


def read_ntp_servers(paths: Paths) -> tuple[str, ...]:
    try:
        lines = paths.timesyncd_dropin.read_text(encoding="utf-8").splitlines()
    except OSError:
        return ()
    servers: list[str] = []
    for line in lines:
        key, equals, value = line.partition("=")
        if equals and key.strip() == "NTP":
            servers = value.split()  # a later NTP= line replaces the earlier ones
    return tuple(servers)


def read_timezone(paths: Paths) -> str:
    try:
        target = os.readlink(paths.localtime)
    except OSError:
        target = ""
    _, mark, zone = target.partition(ZONEINFO_MARK)
    if mark and zone:
        return zone
    # Debian's older record of the zone, for an /etc/localtime that is a copy, not a link
    return read_first_line(paths.timezone_file) or DEFAULT_TIMEZONE


def read_time_settings(paths: Paths) -> TimeSettings:
    return TimeSettings(
        timezone=read_timezone(paths),
        ntp_servers=read_ntp_servers(paths),
        ntp_enabled=paths.timesyncd_enabled_link.is_symlink()
        or paths.timesyncd_enabled_link.exists(),
    )
