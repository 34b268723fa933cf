"""The console's settings dialogs. Each one validates every answer, asks again after a refusal
(showing why), and applies nothing until the whole change is valid and confirmed."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import TypeVar

from passerelle.firstboot.console.screen import WIDTH, header
from passerelle.firstboot.console.terminal import Terminal
from passerelle.firstboot.facts import Facts
from passerelle.firstboot.network_state import (
    NetworkState,
    current_network_state,
    save_network_state,
)
from passerelle.firstboot.password import request_password_reset
from passerelle.firstboot.paths import Paths
from passerelle.firstboot.reset import factory_reset
from passerelle.firstboot.settings import NetworkSettings
from passerelle.firstboot.system import System, SystemActionError
from passerelle.firstboot.validate import (
    Invalid,
    IPAddress,
    IPInterface,
    check_password,
    parse_address,
    parse_dns,
    parse_gateway,
    parse_hostname,
    parse_ip,
)

T = TypeVar("T")
NONE = "none"
RESET_WORD = "RESET"


class FactoryResetDone(Exception):
    """The appliance is restarting; the console has nothing more to show."""


class Wizard:
    def __init__(self, term: Terminal, paths: Paths, system: System) -> None:
        self.term = term
        self.paths = paths
        self.system = system

    # helpers
    def _title(self, title: str, facts: Facts, *help_lines: str) -> None:
        self.term.clear()
        for line in header(title, facts):
            self.term.line(line)
        for line in help_lines:
            self.term.line(f" {line}")
        self.term.line("")

    def _refuse(self, exc: Invalid) -> None:
        # wrapped by hand: a console line that wraps by itself breaks mid-word
        text = textwrap.fill(str(exc), WIDTH - 2, initial_indent="   ! ", subsequent_indent="     ")
        self.term.line(text)

    def _ask(self, prompt: str, current: str, parse: Callable[[str], T]) -> T:
        """Ask until ``parse`` accepts the answer; Enter means ``current``."""
        while True:
            answer = self._read(f" {prompt} [{current}]: ").strip()
            try:
                return parse(answer or current)
            except Invalid as exc:
                self._refuse(exc)

    def _read(self, prompt: str) -> str:
        line = self.term.read_line(prompt)
        return "" if line is None else line

    def _state(self) -> NetworkState:
        return current_network_state(self.paths)

    # network
    def network(self, facts: Facts) -> str:
        state = self._state()
        current = state.settings
        self._title(
            "network settings",
            facts,
            "Enter keeps the value in [brackets], 'none' clears it, Ctrl-C cancels.",
            "The address may carry its prefix (10.0.0.5/24); if not, a netmask is asked for.",
        )
        address = self._ask_address(current.address)
        gateway_now = _gateway_default(current.gateway, address)
        gateway = self._ask(
            "Gateway",
            gateway_now,
            lambda text: _optional(text, lambda t: parse_gateway(t, address)),
        )
        dns_now = " ".join(map(str, current.dns)) or NONE
        dns = self._ask(
            "DNS servers (up to 3)", dns_now, lambda text: () if text == NONE else parse_dns(text)
        )
        wanted = NetworkSettings(address, gateway, dns)
        if wanted == current:
            return "Network unchanged."
        self.term.line("")
        self.term.line(f" New settings: {wanted.describe()}")
        self.term.line(f" The management address becomes {wanted.url}")
        if self._read(" Apply now? [y/N]: ").strip().lower() not in ("y", "yes"):
            return "Network change cancelled; nothing changed."
        save_network_state(self.paths, state.with_settings(wanted, "console"))
        try:
            self.system.apply_network(wanted, state.interface)
            # the management listener binds the management address: it must follow it
            self.system.restart_service()
        except SystemActionError as exc:
            return f"Saved, but applying failed: {exc}"
        return f"Network applied. Browse to {wanted.url}"

    def _ask_address(self, current: IPInterface) -> IPInterface:
        while True:
            answer = self._read(f" Address/prefix [{current}]: ").strip()
            if not answer:
                return current
            host, slash, _ = answer.partition("/")
            try:
                if slash:
                    return parse_address(answer)
                ip = parse_ip(host, "ip")
            except Invalid as exc:
                self._refuse(exc)
                continue
            mask_now = (
                str(current.netmask)
                if ip.version == 4 and current.version == 4
                else str(current.network.prefixlen)
            )
            mask = self._read(f" Netmask or prefix length [{mask_now}]: ").strip() or mask_now
            try:
                return parse_address(answer, mask)
            except Invalid as exc:
                self._refuse(exc)

    # hostname
    def hostname(self, facts: Facts) -> str:
        state = self._state()
        self._title(
            "hostname",
            facts,
            "Letters, digits and hyphens; dots separate a domain (lb1.example.com).",
            "Enter keeps the current name, Ctrl-C cancels.",
        )
        name = self._ask("Hostname", state.hostname, parse_hostname)
        if name == state.hostname:
            return "Hostname unchanged."
        save_network_state(
            self.paths,
            NetworkState(state.settings, name, state.interface, state.source, state.notes),
        )
        try:
            self.system.set_hostname(name)
        except SystemActionError as exc:
            return f"Saved, but setting the hostname failed: {exc}"
        return f"Hostname set to {name}."

    # admin password
    def password(self, facts: Facts) -> str:
        self._title(
            "admin password",
            facts,
            "The new password of the 'admin' user of the web UI and API.",
            "At least 8 characters; typing is not shown. Ctrl-C cancels.",
        )
        while True:
            first = self.term.read_secret(" New admin password: ")
            second = self.term.read_secret(" Same password again: ")
            try:
                password = check_password(first, second)
            except Invalid as exc:
                self._refuse(exc)
                continue
            request_password_reset(self.paths, password)
            return "Admin password changed; the management service applies it within seconds."

    # factory reset
    def factory_reset(self, facts: Facts) -> str:
        self._title(
            "factory reset",
            facts,
            "This erases the configuration, users, certificates, network settings and SSH",
            "host keys, then restarts the appliance, which boots as new (at 192.168.1.101",
            "unless the hypervisor gives settings). The serial and licence are kept.",
        )
        answer = self._read(f" Type {RESET_WORD} to erase everything, Enter to cancel: ")
        if answer.strip() != RESET_WORD:
            return "Factory reset cancelled; nothing changed."
        try:
            self.system.stop_service()
        except SystemActionError as exc:
            self.term.line(f"   ! stopping the engine failed ({exc}); erasing anyway")
        factory_reset(self.paths)
        self.term.line(" Configuration erased. Restarting the appliance...")
        try:
            self.system.reboot()
        except SystemActionError as exc:
            self.term.line(f"   ! restart failed ({exc}); power-cycle the VM")
        raise FactoryResetDone


def _optional(text: str, parse: Callable[[str], T]) -> T | None:
    return None if text.lower() == NONE else parse(text)


def _gateway_default(gateway: IPAddress | None, address: IPInterface) -> str:
    """The current gateway when it still fits the new subnet, otherwise none."""
    if gateway is None:
        return NONE
    if gateway.version == address.version and (
        gateway in address.network or (gateway.version == 6 and gateway.is_link_local)
    ):
        return str(gateway)
    return NONE
