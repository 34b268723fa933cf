"""Hyper-V's side of a deployment: copy the VHDX, Gen 2 VM with Secure Boot, KVP, start.

The VHDX is copied by the host itself from a path it can read (local or UNC), not pushed
through WinRM: an appliance disk is hundreds of MiB, and WinRM carries commands, not files
(base64 in command lines of a few KiB each). Over NTLM the remote session cannot use the
caller's credentials for a share (no delegation), hence --share-user/--share-password.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from passerelle.provisioning.deployment import VmStatus
from passerelle.provisioning.errors import DeployError
from passerelle.provisioning.hyperv import scripts
from passerelle.provisioning.hyperv.winrm_runner import PowerShellRunner
from passerelle.provisioning.progress import Reporter
from passerelle.provisioning.settings import GUESTINFO_PREFIX, ApplianceSpec, DeploymentPlan

# Stored in the VM's Notes; a VM without it is someone else's.
MARKER_PREFIX = "passerelle-deployment:"
# Windows rejects these in file names, and every VM gets a folder of its own name.
FORBIDDEN_IN_NAME = set('\\/:*?"<>|')


@dataclass(frozen=True)
class HypervOptions:
    hosts: list[str]
    vhdx: str
    switch: str
    vm_path: str | None = None
    memory_mib: int = 2048
    cpus: int = 2
    share_user: str | None = None
    share_password: str | None = None


class HypervTarget:
    def __init__(
        self, runners: list[PowerShellRunner], options: HypervOptions, reporter: Reporter
    ) -> None:
        self.runners = runners
        self.options = options
        self.reporter = reporter
        self.description = "Hyper-V " + ", ".join(r.host for r in runners)
        self.index: dict[str, int] = {}
        self.statuses: dict[str, VmStatus] = {}
        self.base_name = ""

    def _runner(self, appliance: ApplianceSpec) -> PowerShellRunner:
        return self.runners[self.index[appliance.name] % len(self.runners)]

    def _share(self) -> dict[str, Any]:
        return {
            "Source": self.options.vhdx,
            "ShareUser": self.options.share_user or "",
            "SharePassword": self.options.share_password or "",
        }

    def check(self, plan: DeploymentPlan) -> None:
        self.base_name = plan.base_name
        if len(self.runners) > len(plan.appliances):
            raise DeployError(f"--host: {len(self.runners)} hosts for {len(plan.appliances)} VM")
        for index, appliance in enumerate(plan.appliances):
            bad = FORBIDDEN_IN_NAME & set(appliance.name)
            if bad:
                raise DeployError(
                    f"--name: {appliance.name!r} holds {''.join(sorted(bad))}, which Windows "
                    "does not allow in the VM's folder name"
                )
            self.index[appliance.name] = index
        if not 512 <= self.options.memory_mib <= 1 << 20 or not 1 <= self.options.cpus <= 64:
            raise DeployError("--memory must be 512 MiB or more and --cpus between 1 and 64")
        if plan.is_pair and len(self.runners) == 1:
            self.reporter.warn(
                f"both appliances go to host {self.runners[0].host}: one host failure takes "
                "down the pair; give two hosts (--host H1 --host H2)"
            )
        for runner in self.runners:
            names = [a.name for a in plan.appliances if self._runner(a) is runner]
            found = runner.run(scripts.INSPECT, {"VmNames": names}, "checking the host")
            if self.options.switch not in (found.get("switches") or []):
                raise DeployError(
                    f"--switch {self.options.switch!r}: no such virtual switch on "
                    f"{runner.host}; available: {', '.join(found.get('switches') or []) or 'none'}"
                )
            for vm in found.get("vms") or []:
                self.statuses[vm["name"]] = self._status(vm)
            if any(not self.statuses[name].exists for name in names):
                runner.run(scripts.CHECK_SOURCE, self._share(), "checking --vhdx")

    def _status(self, vm: dict[str, Any]) -> VmStatus:
        if not vm.get("exists"):
            return VmStatus(exists=False)
        if vm.get("count", 1) > 1:
            raise DeployError(
                f"{vm['count']} VMs are named {vm['name']!r}; rename or remove the extra ones"
            )
        kvp = vm.get("kvp") or {}
        return VmStatus(
            exists=True,
            ours=str(vm.get("notes", "")).startswith(MARKER_PREFIX),
            powered_on=vm.get("state") == "Running",
            keys={k: str(v) for k, v in kvp.items() if k.startswith(GUESTINFO_PREFIX) and v},
        )

    def inspect(self, appliance: ApplianceSpec) -> VmStatus:
        return self.statuses[appliance.name]

    def create(self, appliance: ApplianceSpec, index: int) -> None:
        runner = self._runner(appliance)
        params = {
            "VmName": appliance.name,
            "VmPath": self.options.vm_path or "",
            "SwitchName": self.options.switch,
            "MemoryBytes": self.options.memory_mib * 1024 * 1024,
            "ProcessorCount": self.options.cpus,
            "Marker": f"{MARKER_PREFIX}{self.base_name}/{appliance.role}",
            **self._share(),
        }
        what = f"{appliance.name}: copying the VHDX and creating the VM on {runner.host}"
        with self.reporter.waiting(what):
            runner.run(scripts.CREATE, params, f"creating VM {appliance.name!r}")

    def configure(self, appliance: ApplianceSpec) -> None:
        wanted = appliance.settings.keys()
        current = self.statuses[appliance.name].keys
        self.reporter.info(f"{appliance.name}: passing settings through KVP")
        self._runner(appliance).run(
            scripts.SET_KVP,
            {
                "VmName": appliance.name,
                "Items": wanted,
                "Remove": [key for key in current if key not in wanted],
            },
            f"setting the KVP items of {appliance.name!r}",
        )

    def place(self, plan: DeploymentPlan) -> None:
        """Two hosts keep the pair apart; Hyper-V has no rule to add for a standalone host."""

    def power_on(self, appliance: ApplianceSpec) -> None:
        self._runner(appliance).run(
            scripts.START, {"VmName": appliance.name}, f"starting {appliance.name!r}"
        )

    def addresses(self, appliance: ApplianceSpec) -> list[str]:
        found = self._runner(appliance).run(
            scripts.ADDRESSES, {"VmName": appliance.name}, f"reading {appliance.name!r} addresses"
        )
        return [str(a) for a in (found or {}).get("addresses") or []]
