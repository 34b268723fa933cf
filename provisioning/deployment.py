"""The deployment sequence both hypervisors share: find or create each VM, give it its
first-boot settings, start it, wait for its address and its management API, then pair.

Every step looks before it acts, so running the same command again picks up where an
earlier run stopped instead of creating a second set of VMs.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field, replace
from typing import Protocol

from passerelle.provisioning.appliance_api import (
    ApplianceApi,
    Credentials,
    api_url,
    wait_until_healthy,
)
from passerelle.provisioning.errors import DeployError
from passerelle.provisioning.pairing import Pairing, PairingResult, pair
from passerelle.provisioning.progress import Reporter
from passerelle.provisioning.settings import (
    ADMIN_USER,
    KEY_ADMIN_PASSWORD,
    ApplianceSpec,
    DeploymentPlan,
)


@dataclass(frozen=True)
class VmStatus:
    """What the hypervisor holds under an appliance's name."""

    exists: bool
    ours: bool = False  # carries the marker a Passerelle deployment leaves
    powered_on: bool = False
    keys: dict[str, str] = field(default_factory=dict)  # guestinfo/KVP settings it holds


class Target(Protocol):
    """One hypervisor's side of a deployment."""

    description: str

    def check(self, plan: DeploymentPlan) -> None:
        """Resolve everything the plan names (datastore, switch, hosts...) or raise."""
        ...

    def inspect(self, appliance: ApplianceSpec) -> VmStatus: ...

    def create(self, appliance: ApplianceSpec, index: int) -> None:
        """Create the VM (disk and hardware), marked as a Passerelle appliance, powered off."""
        ...

    def configure(self, appliance: ApplianceSpec) -> None:
        """Hand the first-boot settings to the VM."""
        ...

    def place(self, plan: DeploymentPlan) -> None:
        """Keep the two members of a pair apart (called once all VMs exist)."""
        ...

    def power_on(self, appliance: ApplianceSpec) -> None: ...

    def addresses(self, appliance: ApplianceSpec) -> list[str]:
        """The addresses the guest reports through the hypervisor (none until it runs)."""
        ...


@dataclass(frozen=True)
class Timing:
    address_timeout: float = 600.0
    api_timeout: float = 600.0
    poll_interval: float = 5.0


@dataclass(frozen=True)
class ApplianceOutcome:
    name: str
    role: str
    address: str
    api_url: str
    created: bool


@dataclass(frozen=True)
class DeploymentOutcome:
    appliances: list[ApplianceOutcome]
    credentials: Credentials
    password_generated: bool
    pairing: PairingResult | None


def _adopt_existing_password(
    plan: DeploymentPlan, statuses: list[VmStatus], reporter: Reporter
) -> DeploymentPlan:
    """On a re-run without --admin-password, keep the password the VMs were given first."""
    if not plan.password_generated:
        return plan
    existing = {s.keys[KEY_ADMIN_PASSWORD] for s in statuses if s.keys.get(KEY_ADMIN_PASSWORD)}
    if not existing:
        return plan
    if len(existing) > 1:
        raise DeployError(
            "the existing VMs were given different admin passwords; pass --admin-password"
        )
    password = existing.pop()
    reporter.info("existing VMs found: keeping the admin password they were deployed with")
    appliances = tuple(
        replace(a, settings=replace(a.settings, admin_password=password)) for a in plan.appliances
    )
    return replace(plan, appliances=appliances, password_generated=False)


def _check_existing(appliance: ApplianceSpec, status: VmStatus, target: Target) -> None:
    if not status.exists:
        return
    if not status.ours:
        raise DeployError(
            f"a VM named {appliance.name!r} already exists on {target.description} and was "
            "not deployed by Passerelle; choose another --name or remove that VM"
        )
    if not status.keys:
        return  # created by an earlier run that stopped before configuring it
    wanted = appliance.settings.keys()
    different = sorted(
        key for key in wanted.keys() | status.keys.keys() if wanted.get(key) != status.keys.get(key)
    )
    if different and status.powered_on:
        shown = ", ".join(k.rsplit(".", 1)[-1] for k in different)
        raise DeployError(
            f"VM {appliance.name!r} already runs with other settings ({shown}) than asked "
            "for; run again with the values it was deployed with, or remove the VM to "
            "redeploy it"
        )


def _is_usable(address: str) -> bool:
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return not (parsed.is_link_local or parsed.is_unspecified)


def wait_for_address(
    target: Target, appliance: ApplianceSpec, reporter: Reporter, timing: Timing
) -> str:
    expected = appliance.settings.address
    deadline = time.monotonic() + timing.address_timeout
    reported: list[str] = []
    what = f"{appliance.name}: waiting for the guest to report " + (expected or "an address")
    with reporter.waiting(what) as status:
        while True:
            reported = [a for a in target.addresses(appliance) if _is_usable(a)]
            if expected is not None and expected in reported:
                return expected
            if expected is None and reported:
                ipv4 = [a for a in reported if ":" not in a]
                return (ipv4 or reported)[0]
            if time.monotonic() >= deadline:
                break
            status(f"reported: {', '.join(reported) or 'nothing yet'}")
            time.sleep(timing.poll_interval)
    if reported:
        raise DeployError(
            f"{appliance.name}: the guest reports {', '.join(reported)}, not {expected}; check "
            "the VM console: the appliance did not take the address it was given"
        )
    raise DeployError(
        f"{appliance.name}: no address reported within {timing.address_timeout:.0f}s; check "
        "that the VM booted (console) and its network is connected, then run the command "
        "again to continue"
    )


def run_deployment(
    target: Target,
    plan: DeploymentPlan,
    reporter: Reporter,
    api_port: int = 443,
    timing: Timing | None = None,
    pairing: Pairing | None = None,
) -> DeploymentOutcome:
    timing = timing or Timing()
    target.check(plan)
    statuses = [target.inspect(a) for a in plan.appliances]
    for appliance, status in zip(plan.appliances, statuses, strict=True):
        _check_existing(appliance, status, target)
    plan = _adopt_existing_password(plan, statuses, reporter)

    created: dict[str, bool] = {}
    for index, (appliance, status) in enumerate(zip(plan.appliances, statuses, strict=True)):
        created[appliance.name] = not status.exists
        if status.exists:
            state = "running" if status.powered_on else "powered off"
            reporter.info(f"{appliance.name}: exists ({state}), continuing from there")
        else:
            target.create(appliance, index)
        if not status.powered_on and status.keys != appliance.settings.keys():
            target.configure(appliance)
    if plan.is_pair:
        target.place(plan)
    for appliance, status in zip(plan.appliances, statuses, strict=True):
        if not status.powered_on:
            reporter.info(f"{appliance.name}: powering on")
            target.power_on(appliance)

    credentials = Credentials(ADMIN_USER, plan.appliances[0].settings.admin_password)
    outcomes = []
    for appliance in plan.appliances:
        address = wait_for_address(target, appliance, reporter, timing)
        url = api_url(address, api_port)
        wait_until_healthy(
            ApplianceApi(url, credentials),
            appliance.name,
            reporter,
            timing.api_timeout,
            timing.poll_interval,
        )
        outcomes.append(
            ApplianceOutcome(appliance.name, appliance.role, address, url, created[appliance.name])
        )

    pairing_result = None
    if plan.is_pair:
        reporter.info(f"pairing {outcomes[0].name} (primary) with {outcomes[1].name}")
        pairing_result = pair(outcomes[0].api_url, outcomes[1].api_url, credentials, pairing)
        if pairing_result.state == "unavailable":
            reporter.warn(pairing_result.detail)
        else:
            reporter.info(f"pairing: {pairing_result.state}")
    return DeploymentOutcome(outcomes, credentials, plan.password_generated, pairing_result)
