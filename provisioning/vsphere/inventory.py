"""Finding the datacenter, compute, datastore and network a deployment names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyVmomi import vim

from passerelle.provisioning.errors import DeployError
from passerelle.provisioning.vsphere.properties import objects_of_type, properties


@dataclass(frozen=True)
class Placement:
    """Where the VMs go: one (host, resource pool) per VM, and the cluster when there is one."""

    datacenter: Any
    vm_folder: Any
    datastore: Any
    network: Any
    hosts: list[Any]
    pools: list[Any]
    host_names: list[str]
    cluster: Any | None
    cluster_name: str | None


def _by_name(
    service: vim.ServiceInstance, container: Any, kind: type, extra: list[str] | None = None
) -> dict[str, tuple[Any, dict[str, Any]]]:
    found: dict[str, tuple[Any, dict[str, Any]]] = {}
    for obj, props in objects_of_type(service, container, kind, ["name", *(extra or [])]):
        found[props["name"]] = (obj, props)
    return found


def _choices(names: object) -> str:
    listed = sorted(str(n) for n in names)  # type: ignore[attr-defined]
    return ", ".join(listed) if listed else "none"


def find_datacenter(service: vim.ServiceInstance, name: str | None) -> Any:
    datacenters = _by_name(service, service.content.rootFolder, vim.Datacenter)
    if name is None:
        if len(datacenters) != 1:
            raise DeployError(
                f"--datacenter: choose one of {_choices(datacenters)}"
                if datacenters
                else "this vSphere server has no datacenter"
            )
        return next(iter(datacenters.values()))[0]
    if name not in datacenters:
        raise DeployError(f"--datacenter {name!r}: not found; available: {_choices(datacenters)}")
    return datacenters[name][0]


HOST_PATHS = ["runtime.connectionState", "runtime.inMaintenanceMode", "parent", "datastore"]


def _eligible(name: str, props: dict[str, Any]) -> str | None:
    """Why a host cannot take a VM, or None."""
    if props.get("runtime.connectionState") != "connected":
        return f"host {name!r} is {props.get('runtime.connectionState')}"
    if props.get("runtime.inMaintenanceMode"):
        return f"host {name!r} is in maintenance mode"
    return None


def resolve(
    service: vim.ServiceInstance,
    datacenter_name: str | None,
    cluster_name: str | None,
    host_names: list[str],
    datastore_name: str,
    network_name: str,
    count: int,
) -> Placement:
    datacenter = find_datacenter(service, datacenter_name)
    dc = properties(service, datacenter, ["vmFolder", "hostFolder", "datastore", "network"])

    datastores = {
        properties(service, ds, ["name"]).get("name"): ds for ds in dc.get("datastore", [])
    }
    if datastore_name not in datastores:
        raise DeployError(
            f"--datastore {datastore_name!r}: not found in this datacenter; available: "
            f"{_choices(datastores)}"
        )
    datastore = datastores[datastore_name]

    networks = {properties(service, n, ["name"]).get("name"): n for n in dc.get("network", [])}
    if network_name not in networks:
        raise DeployError(
            f"--network {network_name!r}: not found in this datacenter; available: "
            f"{_choices(networks)}"
        )

    all_hosts = _by_name(service, dc["hostFolder"], vim.HostSystem, HOST_PATHS)
    cluster = None
    if cluster_name is not None:
        clusters = _by_name(service, dc["hostFolder"], vim.ClusterComputeResource)
        if cluster_name not in clusters:
            raise DeployError(
                f"--cluster {cluster_name!r}: not found; available: {_choices(clusters)}"
            )
        cluster = clusters[cluster_name][0]
        members = {
            name: entry for name, entry in all_hosts.items() if entry[1].get("parent") == cluster
        }
    else:
        members = all_hosts

    if host_names:
        if len(host_names) not in (1, count):
            raise DeployError(f"--hosts: give 1 or {count} host names, got {len(host_names)}")
        for name in host_names:
            if name not in members:
                where = f"in cluster {cluster_name!r}" if cluster_name else "in this datacenter"
                raise DeployError(
                    f"--hosts {name!r}: no such host {where}; available: {_choices(members)}"
                )
            reason = _eligible(name, members[name][1])
            if reason:
                raise DeployError(f"--hosts: {reason}; choose another host")
        chosen = (host_names * count)[:count] if len(host_names) == 1 else list(host_names)
    elif cluster is not None:
        candidates = [
            name
            for name, (_, props) in sorted(members.items())
            if _eligible(name, props) is None and datastore in props.get("datastore", [])
        ]
        if not candidates:
            raise DeployError(
                f"--cluster {cluster_name!r}: no connected host outside maintenance mode sees "
                f"datastore {datastore_name!r}"
            )
        chosen = (candidates * count)[:count]
    else:
        raise DeployError("say where the VMs run: --cluster NAME or --hosts HOST[,HOST]")

    hosts, pools = [], []
    for name in chosen:
        host, props = members[name]
        if datastore not in props.get("datastore", []):
            raise DeployError(
                f"--datastore {datastore_name!r} is not mounted on host {name!r}; choose a "
                "datastore the host sees"
            )
        compute = cluster if cluster is not None else props["parent"]
        pool = properties(service, compute, ["resourcePool"]).get("resourcePool")
        hosts.append(host)
        pools.append(pool)
    return Placement(
        datacenter=datacenter,
        vm_folder=dc["vmFolder"],
        datastore=datastore,
        network=networks[network_name],
        hosts=hosts,
        pools=pools,
        host_names=chosen,
        cluster=cluster,
        cluster_name=cluster_name,
    )
