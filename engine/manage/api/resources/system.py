"""/api/v1/system: the appliance's own network, hostname and clock.

The same checks and the same writers as the VM console (passerelle.firstboot), acting through
its ``System``: live commands only for the root prefix "/", recorded ones for any other, so a
test can never change this machine's network, hostname or time.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from flask import Flask, Response, current_app
from gevent.lock import RLock
from pydantic import Field

from passerelle import __version__
from passerelle.engine import compiled
from passerelle.engine.manage.api.bodies import body, reply
from passerelle.engine.manage.api.changes import note
from passerelle.engine.manage.api.errors import ApiError
from passerelle.engine.manage.api.schemas import Body
from passerelle.engine.manage.api.spec import Resource
from passerelle.firstboot.files import read_first_line
from passerelle.firstboot.identity import load_identity
from passerelle.firstboot.network_state import (
    NetworkState,
    current_network_state,
    save_network_state,
)
from passerelle.firstboot.paths import Paths
from passerelle.firstboot.settings import NetworkSettings
from passerelle.firstboot.system import System, SystemActionError, system_for
from passerelle.firstboot.timesync import read_time_settings
from passerelle.firstboot.validate import (
    Invalid,
    parse_address,
    parse_dns,
    parse_gateway,
    parse_hostname,
    parse_ntp_servers,
    parse_timezone,
)

log = logging.getLogger("passerelle.api")

EXTENSION = "passerelle.system"
BASE = "/api/v1/system"
# the console's names for the parts of an address, as this API's body names them
_FIELDS = {"ip": "address", "netmask": "address"}

resource = Resource("system", "system")


@dataclass
class Appliance:
    """The root prefix the system files live under and the system that applies them."""

    paths: Paths
    system: System
    # one change at a time: each one reads network.json, edits it and writes it back
    lock: RLock = field(default_factory=RLock)


def appliance_for(root: Path | None, mode: str | None, directory: Path) -> Appliance | None:
    """The appliance at ``root`` ("live" commands only for "/", recorded otherwise, unless
    ``mode`` says). Without ``root``: "/" when the state ``directory`` is the appliance's own
    /var/lib/passerelle, else None (an engine run elsewhere does not own the machine)."""
    if root is None:
        if directory.absolute() != Paths.at("/").state_dir:
            return None
        root = Path("/")
    paths = Paths.at(root)
    try:
        return Appliance(paths, system_for(paths, mode))
    except SystemActionError as exc:
        raise ValueError(str(exc)) from None


def install(app: Flask, appliance: Appliance | None) -> None:
    app.extensions[EXTENSION] = appliance


def _appliance() -> Appliance:
    appliance: Appliance | None = current_app.extensions.get(EXTENSION)
    if appliance is None:
        # not a server fault: an engine run outside the appliance simply has no such resource
        raise ApiError(404, "no system settings: this engine does not run the appliance")
    return appliance


# bodies
class NetworkOut(Body):
    address: str = Field(description="the management address with its prefix, 10.0.0.5/24")
    prefix: int
    gateway: str | None
    dns: list[str]
    interface: str | None
    mac: str | None
    source: str = Field(description="who set it: default, console, api or a hypervisor source")


class TimeOut(Body):
    utc: str = Field(description="the appliance's clock, UTC")
    timezone: str
    ntp_servers: list[str]
    ntp_in_use: bool = Field(description="systemd-timesyncd is enabled")


class SystemOut(Body):
    hostname: str
    network: NetworkOut
    time: TimeOut
    serial: str | None
    version: str
    request_path: str = Field(
        description="how the engine runs its request path: compiled, or from source and why",
        examples=["compiled"],
    )


class NetworkIn(Body):
    address: str = Field(
        max_length=64, description="with its prefix length", examples=["192.168.1.101/24"]
    )
    gateway: str | None = Field(default=None, max_length=64, examples=["192.168.1.1"])
    dns: list[str] = Field(default_factory=list, max_length=16, examples=[["192.168.1.1"]])


class HostnameIn(Body):
    hostname: str = Field(max_length=256, examples=["lb1.example.com"])


class TimeIn(Body):
    timezone: str = Field(
        max_length=128, description="a tz database zone", examples=["Europe/Paris"]
    )
    ntp_servers: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="none turns NTP off",
        examples=[["pool.ntp.org"]],
    )


# reading
def _state(paths: Paths) -> NetworkState:
    state = current_network_state(paths)
    if paths.network_state.exists():
        return state
    # before first boot saved network.json, the name in force is the image's
    return replace(state, hostname=read_first_line(paths.hostname_file) or state.hostname)


def _facts(appliance: Appliance) -> dict[str, object]:
    paths = appliance.paths
    state = _state(paths)
    settings = state.settings
    clock = read_time_settings(paths)
    identity = load_identity(paths)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return SystemOut(
        hostname=state.hostname,
        network=NetworkOut(
            address=str(settings.address),
            prefix=settings.address.network.prefixlen,
            gateway=str(settings.gateway) if settings.gateway else None,
            dns=[str(server) for server in settings.dns],
            interface=state.interface.name if state.interface else None,
            mac=state.interface.mac if state.interface else None,
            source=state.source,
        ),
        time=TimeOut(
            utc=now,
            timezone=clock.timezone,
            ntp_servers=list(clock.ntp_servers),
            ntp_in_use=clock.ntp_enabled,
        ),
        serial=identity.serial if identity else None,
        version=__version__,
        request_path=compiled.describe(),
    ).model_dump(mode="json")


# writing
def _refuse(exc: Invalid) -> ApiError:
    return ApiError(422, str(exc), _FIELDS.get(exc.field, exc.field))


def _applied(action: str, apply: Callable[[], None]) -> None:
    try:
        apply()
    except SystemActionError as exc:
        # the files are written: the next boot or the next change applies them
        note(f"{action} (saved; applying failed: {exc})")
        raise ApiError(500, f"saved, but applying failed: {exc}") from None
    note(action)


def _restart_engine(system: System) -> None:
    try:
        system.restart_service()
    except SystemActionError as exc:
        log.error("restarting the engine on its new management address failed: %s", exc)


# the operations, shared by the API's views and the web UI's forms
def system_facts() -> dict[str, object]:
    """What GET answers; 404 when this engine does not run the appliance."""
    return _facts(_appliance())


def set_network(wanted: NetworkIn) -> bool:
    """Check ``wanted`` as the console does, save and apply it; 422 naming the field if refused.
    True when the management address moved: see ``restart_when_sent``."""
    appliance = _appliance()
    try:
        address = parse_address(wanted.address)
        gateway = parse_gateway(wanted.gateway, address) if wanted.gateway else None
        dns = parse_dns(wanted.dns)
    except Invalid as exc:
        raise _refuse(exc) from None
    settings = NetworkSettings(address, gateway, dns)
    with appliance.lock:
        state = _state(appliance.paths)
        if settings == state.settings:
            return False
        save_network_state(appliance.paths, state.with_settings(settings, "api"))
        _applied(
            f"set network {settings.describe()}",
            lambda: appliance.system.apply_network(settings, state.interface),
        )
        return settings.address != state.settings.address


def restart_when_sent(response: Response) -> Response:
    """Restart the engine once ``response`` is sent: the management listener binds the
    management address, so it must move onto a new one, and the restart ends this process."""
    system = _appliance().system
    response.call_on_close(lambda: _restart_engine(system))
    return response


def set_hostname(wanted: HostnameIn) -> None:
    """Check, save and apply the hostname; 422 naming the field if refused."""
    appliance = _appliance()
    try:
        name = parse_hostname(wanted.hostname)
    except Invalid as exc:
        raise _refuse(exc) from None
    with appliance.lock:
        state = _state(appliance.paths)
        if name != state.hostname:
            save_network_state(appliance.paths, replace(state, hostname=name))
            _applied(f"set hostname {name}", lambda: appliance.system.set_hostname(name))


def set_time(wanted: TimeIn) -> None:
    """Check and apply the time zone and NTP servers; 422 naming the field if refused."""
    appliance = _appliance()
    try:
        zone = parse_timezone(wanted.timezone)
        servers = parse_ntp_servers(wanted.ntp_servers)
    except Invalid as exc:
        raise _refuse(exc) from None
    ntp = f"NTP servers {' '.join(servers)}" if servers else "NTP off"
    with appliance.lock:
        clock = read_time_settings(appliance.paths)
        unchanged = (clock.timezone, clock.ntp_servers, clock.ntp_enabled) == (
            zone,
            servers,
            bool(servers),
        )
        if not unchanged:
            _applied(
                f"set time zone {zone}, {ntp}", lambda: appliance.system.apply_time(zone, servers)
            )


@resource.route(
    "GET",
    BASE,
    "The appliance: hostname, management network, clock, serial and version",
    response=SystemOut,
    errors=(404,),
)
def get_system() -> Response:
    return reply(system_facts())


@resource.route(
    "PUT",
    BASE + "/network",
    "Set the management address, gateway and DNS servers (as the VM console does)",
    body=NetworkIn,
    response=SystemOut,
    errors=(404, 500),
)
def put_network() -> Response:
    _appliance()  # 404 before looking at the body
    moved = set_network(body(NetworkIn))
    response = reply(system_facts())
    return restart_when_sent(response) if moved else response


@resource.route(
    "PUT",
    BASE + "/hostname",
    "Set the hostname (/etc/hostname, /etc/hosts, hostnamectl)",
    body=HostnameIn,
    response=SystemOut,
    errors=(404, 500),
)
def put_hostname() -> Response:
    _appliance()
    set_hostname(body(HostnameIn))
    return reply(system_facts())


@resource.route(
    "PUT",
    BASE + "/time",
    "Set the time zone and the NTP servers (none turns NTP off)",
    body=TimeIn,
    response=SystemOut,
    errors=(404, 500),
)
def put_time() -> Response:
    _appliance()
    set_time(body(TimeIn))
    return reply(system_facts())
