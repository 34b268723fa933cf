"""Every action on the running system, behind one small interface.

``System`` writes the configuration files under the root prefix and then runs commands through
a runner: ``LiveRunner`` runs them, ``RecordingRunner`` only appends them to a JSON-lines file
under the prefix. Tests and any root other than "/" use the recording one, so they can never
change this machine's network or hostname.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Sequence
from typing import Protocol

from passerelle.firstboot.interfaces import Interface
from passerelle.firstboot.networkd import write_hostname_files, write_network_files
from passerelle.firstboot.paths import Paths
from passerelle.firstboot.settings import NetworkSettings
from passerelle.firstboot.timesync import write_timesyncd_dropin

log = logging.getLogger("passerelle.firstboot")
ENGINE_UNIT = "passerelle.service"
TIMESYNC_UNIT = "systemd-timesyncd.service"
COMMAND_TIMEOUT = 60.0


class SystemActionError(RuntimeError):
    """A command that failed; the message says which and why."""


class Runner(Protocol):
    def run(self, argv: Sequence[str]) -> None: ...


class LiveRunner:
    def run(self, argv: Sequence[str]) -> None:
        try:
            done = subprocess.run(
                list(argv), capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SystemActionError(f"{' '.join(argv)}: {exc}") from None
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            reason = detail[-1] if detail else f"exit status {done.returncode}"
            raise SystemActionError(f"{' '.join(argv)}: {reason}")


class RecordingRunner:
    """Runs nothing; appends ``{"argv": [...]}`` lines to ``path``."""

    def __init__(self, paths: Paths) -> None:
        self.path = paths.recorded_actions

    def run(self, argv: Sequence[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"argv": list(argv)}) + "\n")

    def recorded(self) -> list[list[str]]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line)["argv"] for line in lines if line.strip()]


class System:
    def __init__(self, paths: Paths, runner: Runner) -> None:
        self.paths = paths
        self.runner = runner

    def apply_network(self, settings: NetworkSettings, interface: Interface | None) -> None:
        write_network_files(self.paths, settings, interface)
        self.runner.run(["networkctl", "reload"])
        if interface:
            # reload alone leaves an already configured link with its old address
            self.runner.run(["networkctl", "reconfigure", interface.name])

    def set_hostname(self, hostname: str) -> None:
        write_hostname_files(self.paths, hostname)
        try:
            self.runner.run(["hostnamectl", "set-hostname", hostname])
        except SystemActionError as exc:
            # early in boot hostnamed (D-Bus) may be missing; the kernel call is enough
            log.info("hostnamectl unavailable (%s); using hostname(1)", exc)
            self.runner.run(["hostname", hostname])

    def apply_time(self, timezone: str, ntp_servers: tuple[str, ...]) -> None:
        """The zone, then NTP: on with exactly ``ntp_servers``, or off when there are none."""
        write_timesyncd_dropin(self.paths, ntp_servers)
        self.runner.run(["timedatectl", "set-timezone", timezone])
        self.runner.run(["timedatectl", "set-ntp", "true" if ntp_servers else "false"])
        if ntp_servers:
            # timesyncd reads its configuration only when it starts
            self.runner.run(["systemctl", "try-restart", TIMESYNC_UNIT])

    def generate_ssh_host_keys(self) -> None:
        self.paths.ssh_dir.mkdir(parents=True, exist_ok=True)
        self.runner.run(["ssh-keygen", "-A", "-f", str(self.paths.root)])

    def load_module(self, name: str) -> None:
        self.runner.run(["modprobe", name])

    def restart_service(self, unit: str = ENGINE_UNIT) -> None:
        self.runner.run(["systemctl", "restart", unit])

    def stop_service(self, unit: str = ENGINE_UNIT) -> None:
        self.runner.run(["systemctl", "stop", unit])

    def reboot(self) -> None:
        self.runner.run(["systemctl", "reboot"])


def live_system(paths: Paths) -> System:
    if not paths.is_system_root:
        # hostnamectl or networkctl would act on this machine, not on the prefix
        raise SystemActionError(f"live system actions need the root prefix /, not {paths.root}")
    return System(paths, LiveRunner())


def recording_system(paths: Paths) -> System:
    return System(paths, RecordingRunner(paths))


def system_for(paths: Paths, mode: str | None = None) -> System:
    """``mode`` "live" or "recording"; by default live only for the real root."""
    if mode is None:
        mode = "live" if paths.is_system_root else "recording"
    if mode == "live":
        return live_system(paths)
    if mode == "recording":
        return recording_system(paths)
    raise ValueError(f"unknown system mode {mode!r}")
