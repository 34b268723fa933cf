"""keepalived, run as a child of ``passerelle engine``: its configuration and its process.

The engine owns keepalived rather than a system service doing so: one process tree to start and
stop, the configuration written from the model before every (re)load, and its own pid files so
that several pairs can run side by side (in network namespaces, in tests). keepalived gets
SIGTERM when the engine dies (PR_SET_PDEATHSIG), and a stopping keepalived sends a priority-0
advertisement, so the peer takes over at once instead of waiting for missed adverts.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import logging
import os
import shlex
import shutil
import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import gevent
from gevent import subprocess

from passerelle.engine.model.config import Config
from passerelle.engine.model.ha import HASettings

log = logging.getLogger("passerelle.ha")

INSTANCE = "passerelle"
SCRIPT = "passerelle_engine"
RESTART_DELAY = 1.0
_PR_SET_PDEATHSIG = 1


def shared_addresses(settings: HASettings, config: Config) -> list[str]:
    """The CIDRs keepalived moves: the configured ones, else every virtual service address."""
    if settings.shared_addresses:
        return list(settings.shared_addresses)
    found: list[str] = []
    for vs in config.virtual_services:
        address = ipaddress.ip_address(vs.address)
        if address.is_unspecified or address.is_loopback:
            continue  # a wildcard or loopback listener needs no address to move
        cidr = f"{address}/{address.max_prefixlen}"
        if cidr not in found and str(address) != settings.local_address:
            found.append(cidr)
    return found


HELPER = "passerelle-ha"


def write_helper(directory: Path, python: str = sys.executable) -> Path:
    """The script keepalived runs for notify and check events.

    keepalived resolves symbolic links before running a script, which would turn a
    virtualenv's ``bin/python`` into the bare interpreter without our packages; a small shell
    script that execs the interpreter by its own path keeps the environment intact.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / HELPER
    text = f'#!/bin/sh\nexec {shlex.quote(python)} -m passerelle.engine.ha.command "$@"\n'
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        temporary = path.with_suffix(".tmp")
        temporary.write_text(text, encoding="utf-8")
        os.chmod(temporary, 0o755)
        os.replace(temporary, path)
    return path


@dataclass(frozen=True)
class Commands:
    """How keepalived calls back into Passerelle (notify and track scripts)."""

    state_file: Path
    check_url: str | None  # None: no track script (nothing local to check)
    helper: Path = Path("/usr/bin/passerelle")  # ``write_helper``'s script, or the command

    def notify(self, state: str, peer: str) -> str:
        return shlex.join(
            [
                str(self.helper),
                "notify",
                "--state-file",
                str(self.state_file),
                "--peer",
                peer,
                state,
            ]
        )

    def check(self, timeout: float) -> str | None:
        if self.check_url is None:
            return None
        # curl starts in milliseconds; a Python interpreter on a loaded machine can take more
        # than a second, which keepalived would count as a failed check.
        curl = shutil.which("curl")
        if curl is not None:
            return shlex.join(
                [curl, "-fsSk", "-m", f"{timeout:g}", "-o", "/dev/null", self.check_url]
            )
        return shlex.join([str(self.helper), "check", "--timeout", f"{timeout:g}", self.check_url])


def _quoted(text: str) -> str:
    # keepalived's quoted strings end at the next double quote; our paths never hold one.
    if '"' in text or "\n" in text:
        raise ValueError(f"cannot put {text!r} in keepalived.conf")
    return f'"{text}"'


def render(settings: HASettings, addresses: Iterable[str], commands: Commands) -> str:
    """keepalived.conf for this node: one VRRP instance, unicast to the peer, BACKUP at start.

    Both nodes start as BACKUP so that ``nopreempt`` holds (keepalived ignores it otherwise);
    the higher priority wins the first election only.
    """
    interval = max(1, round(settings.check_interval))  # keepalived counts whole seconds here
    lines = [
        "# Written by passerelle engine from its configuration; edits are overwritten.",
        "global_defs {",
        f"    router_id passerelle-{settings.node}",
        "    script_user root",
        "    enable_script_security",
        # adverts from anyone but the peer are ignored
        "    vrrp_check_unicast_src",
        "    vrrp_garp_master_delay 1",
        "    vrrp_garp_master_repeat 3",
        "    vrrp_garp_master_refresh 60",
        "}",
    ]
    check = commands.check(timeout=float(interval))
    if check is not None:
        lines += [
            f"vrrp_script {SCRIPT} {{",
            f"    script {_quoted(check)}",
            f"    interval {interval}",
            f"    timeout {interval + 1}",  # room beyond the check's own timeout
            f"    fall {settings.check_retries}",
            f"    rise {settings.check_rise}",
            "}",
        ]
    lines += [
        f"vrrp_instance {INSTANCE} {{",
        "    state BACKUP",
        f"    interface {settings.interface}",
        f"    virtual_router_id {settings.virtual_router_id}",
        f"    priority {settings.effective_priority}",
        f"    advert_int {settings.advert_interval:g}",
        f"    version {settings.vrrp_version}",
    ]
    if not settings.preempt:
        lines.append("    nopreempt")
    lines += [
        f"    unicast_src_ip {settings.local_address}",
        "    unicast_peer {",
        f"        {settings.peer_address}",
        "    }",
        "    virtual_ipaddress {",
        *(f"        {cidr} dev {settings.interface}" for cidr in addresses),
        "    }",
    ]
    if check is not None:
        lines += ["    track_script {", f"        {SCRIPT}", "    }"]
    peer = settings.peer_address
    lines += [
        f"    notify_master {_quoted(commands.notify('MASTER', peer))}",
        f"    notify_backup {_quoted(commands.notify('BACKUP', peer))}",
        f"    notify_fault {_quoted(commands.notify('FAULT', peer))}",
        f"    notify_stop {_quoted(commands.notify('STOP', peer))}",
        "}",
        "",
    ]
    return "\n".join(lines)


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class KeepalivedProcess:
    """One keepalived (VRRP only) with its files in ``run_dir``; restarted if it exits."""

    def __init__(self, run_dir: Path, binary: str = "keepalived") -> None:
        self.run_dir = run_dir
        self.binary = binary
        self.config_file = run_dir / "keepalived.conf"
        self.pid_file = run_dir / "keepalived.pid"
        self.vrrp_pid_file = run_dir / "keepalived-vrrp.pid"
        self.process: subprocess.Popen | None = None
        self.error: str | None = None
        self._wanted = False
        self._text: str | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.running and self.process else None

    def configure(self, text: str) -> None:
        """Write the configuration and make keepalived use it (start, or reload on SIGHUP)."""
        self._wanted = True
        if text == self._text and self.running:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        temporary = self.config_file.with_suffix(".tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, self.config_file)
        self._text = text
        if self.running and self.process is not None:
            log.info("reloading keepalived (%s)", self.config_file)
            self.process.send_signal(signal.SIGHUP)
        else:
            self._start()

    def _start(self) -> None:
        argv = [
            self.binary,
            "--dont-fork",
            "--log-console",
            "--log-detail",
            "--no-syslog",
            "--vrrp",
            "--use-file",
            str(self.config_file),
            "--pid",
            str(self.pid_file),
            "--vrrp_pid",
            str(self.vrrp_pid_file),
        ]
        try:
            process = subprocess.Popen(argv, preexec_fn=_die_with_parent, stdin=subprocess.DEVNULL)
        except OSError as exc:
            self.error = f"cannot run {self.binary}: {exc.strerror or exc}"
            log.error("%s; HA stays in fault until it can", self.error)
            return
        self.error = None
        self.process = process
        log.info("keepalived started (pid %d)", process.pid)
        gevent.spawn(self._watch, process)

    def _watch(self, process: subprocess.Popen) -> None:
        code = process.wait()
        if not self._wanted or process is not self.process:
            return
        self.error = f"keepalived exited with status {code}"
        log.error("%s; restarting it", self.error)
        gevent.sleep(RESTART_DELAY)  # one that dies at once must not spin
        if self._wanted and process is self.process:
            self._start()

    def stop(self) -> None:
        self._wanted = False
        self._text = None
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                process.kill()
            process.wait()
        log.info("keepalived stopped")
