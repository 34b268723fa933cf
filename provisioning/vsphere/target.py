"""vSphere's side of a deployment: VMs from the OVA, guestinfo, anti-affinity, power, addresses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyVmomi import vim, vmodl

from passerelle.provisioning.deployment import VmStatus
from passerelle.provisioning.errors import DeployError
from passerelle.provisioning.ova import OvaPackage
from passerelle.provisioning.progress import Reporter
from passerelle.provisioning.settings import GUESTINFO_PREFIX, ApplianceSpec, DeploymentPlan
from passerelle.provisioning.vsphere.connection import ServerAddress
from passerelle.provisioning.vsphere.importer import ImportRequest, import_ova
from passerelle.provisioning.vsphere.inventory import Placement, resolve
from passerelle.provisioning.vsphere.properties import (
    TaskFailed,
    objects_of_type,
    properties,
    wait_for_task,
)

# Written into every VM this tool creates; a VM without it is someone else's.
MARKER_KEY = "passerelle.deployment"


@dataclass(frozen=True)
class VsphereOptions:
    datacenter: str | None
    cluster: str | None
    hosts: list[str]
    datastore: str
    network: str
    ova: Path


def anti_affinity_rule_name(base_name: str) -> str:
    return f"{base_name}-anti-affinity"


class VsphereTarget:
    def __init__(
        self,
        service: vim.ServiceInstance,
        server: ServerAddress,
        options: VsphereOptions,
        reporter: Reporter,
        insecure: bool,
    ) -> None:
        self.service = service
        self.server = server
        self.options = options
        self.reporter = reporter
        self.insecure = insecure
        self.description = f"vSphere {server.authority}"
        self.placement: Placement | None = None
        self.vms: dict[str, Any] = {}
        self.base_name = ""

    def check(self, plan: DeploymentPlan) -> None:
        self.base_name = plan.base_name
        self.placement = resolve(
            self.service,
            self.options.datacenter,
            self.options.cluster,
            self.options.hosts,
            self.options.datastore,
            self.options.network,
            len(plan.appliances),
        )
        if plan.is_pair and len(set(self.placement.host_names)) < 2:
            self.reporter.warn(
                f"both appliances go to host {self.placement.host_names[0]}: one host failure "
                "takes down the pair; give two hosts (--hosts) or a cluster with two usable hosts"
            )
        # Open the OVA now so a bad file fails before anything is created.
        if not self.options.ova.is_file():
            raise DeployError(f"--ova {self.options.ova}: no such file")

    def _find_vm(self, name: str) -> tuple[Any, dict[str, Any]] | None:
        assert self.placement is not None
        matches = [
            (vm, props)
            for vm, props in objects_of_type(
                self.service,
                self.placement.datacenter,
                vim.VirtualMachine,
                ["name", "config.extraConfig", "runtime.powerState"],
            )
            if props.get("name") == name
        ]
        if len(matches) > 1:
            raise DeployError(
                f"{len(matches)} VMs are named {name!r} in this datacenter; rename or remove "
                "the extra ones, or choose another --name"
            )
        return matches[0] if matches else None

    def inspect(self, appliance: ApplianceSpec) -> VmStatus:
        found = self._find_vm(appliance.name)
        if found is None:
            return VmStatus(exists=False)
        vm, props = found
        self.vms[appliance.name] = vm
        extra: dict[str, str] = {}
        # Later entries win: some servers append a reconfigured key instead of replacing it.
        for option in props.get("config.extraConfig") or []:
            extra[option.key] = str(option.value)
        keys = {k: v for k, v in extra.items() if k.startswith(GUESTINFO_PREFIX) and v != ""}
        return VmStatus(
            exists=True,
            ours=MARKER_KEY in extra,
            powered_on=props.get("runtime.powerState") == vim.VirtualMachine.PowerState.poweredOn,
            keys=keys,
        )

    def create(self, appliance: ApplianceSpec, index: int) -> None:
        assert self.placement is not None
        placement = self.placement
        request = ImportRequest(
            name=appliance.name,
            pool=placement.pools[index],
            folder=placement.vm_folder,
            host=placement.hosts[index],
            datastore=placement.datastore,
            network=placement.network,
            extra_config={MARKER_KEY: f"{self.base_name}/{appliance.role}"},
        )
        self.reporter.info(
            f"{appliance.name}: importing {self.options.ova.name} on host "
            f"{placement.host_names[index]}"
        )
        with OvaPackage(self.options.ova) as ova:
            self.vms[appliance.name] = import_ova(
                self.service, self.server.authority, ova, request, self.insecure, self.reporter
            )

    def configure(self, appliance: ApplianceSpec) -> None:
        vm = self.vms[appliance.name]
        wanted = appliance.settings.keys()
        current = self.inspect(appliance).keys
        # An empty value deletes a key, so settings dropped since an earlier run do not linger.
        options = [vim.option.OptionValue(key=k, value=v) for k, v in wanted.items()]
        options += [vim.option.OptionValue(key=k, value="") for k in current if k not in wanted]
        shown = ", ".join(sorted(k.removeprefix(GUESTINFO_PREFIX) for k in wanted))
        self.reporter.info(f"{appliance.name}: setting guestinfo.passerelle.* ({shown})")
        spec = vim.vm.ConfigSpec(extraConfig=options)
        self._run(lambda: vm.ReconfigVM_Task(spec=spec), appliance.name)

    def place(self, plan: DeploymentPlan) -> None:
        assert self.placement is not None
        cluster = self.placement.cluster
        if cluster is None:
            return  # standalone hosts: the two VMs were created on the hosts given
        vms = [self.vms[a.name] for a in plan.appliances]
        name = anti_affinity_rule_name(plan.base_name)
        config = properties(self.service, cluster, ["configurationEx"]).get("configurationEx")
        rules = list(getattr(config, "rule", None) or [])
        existing = next((r for r in rules if r.name == name), None)
        drs = getattr(config, "drsConfig", None)
        members = {vm._moId for vm in getattr(existing, "vm", None) or []}
        if isinstance(existing, vim.cluster.AntiAffinityRuleSpec) and members == {
            vm._moId for vm in vms
        }:
            self.reporter.info(f"anti-affinity rule {name!r} already in place")
            return
        operation = "add" if existing is None else "edit"
        rule = vim.cluster.AntiAffinityRuleSpec(name=name, enabled=True, mandatory=True, vm=vms)
        if existing is not None:
            rule.key = existing.key
        spec = vim.cluster.ConfigSpecEx(
            rulesSpec=[vim.cluster.RuleSpec(operation=operation, info=rule)]
        )
        self.reporter.info(f"anti-affinity rule {name!r} on cluster {self.placement.cluster_name}")
        self._run(lambda: cluster.ReconfigureComputeResource_Task(spec=spec, modify=True), name)
        if drs is not None and not drs.enabled:
            self.reporter.warn(
                f"DRS is off on cluster {self.placement.cluster_name}: the anti-affinity rule "
                "is kept but only DRS/vSphere HA enforce it"
            )

    def power_on(self, appliance: ApplianceSpec) -> None:
        self._run(self.vms[appliance.name].PowerOnVM_Task, appliance.name)

    def addresses(self, appliance: ApplianceSpec) -> list[str]:
        props = properties(self.service, self.vms[appliance.name], ["guest.ipAddress", "guest.net"])
        found: list[str] = []
        if props.get("guest.ipAddress"):
            found.append(props["guest.ipAddress"])
        for nic in props.get("guest.net") or []:
            found += [a for a in nic.ipAddress or [] if a not in found]
        return found

    def _run(self, start: Callable[[], Any], what: str) -> None:
        try:
            wait_for_task(self.service, start(), what)
        except TaskFailed as exc:
            raise DeployError(str(exc)) from exc
        except vmodl.MethodFault as exc:
            raise DeployError(f"{what}: {exc.msg}") from exc
