"""``passerelle deploy``: scripted deployment of one appliance or an HA pair on vSphere/Hyper-V."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from passerelle.cli import CommandError

PAIR_HELP = "deploy an HA pair NAME-a (primary) and NAME-b (secondary) and pair them (default)"


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _env_option(group: Any, option: str, variable: str, help: str) -> None:
    """An option that the environment may give instead (secrets stay off the command line);
    ``{env}`` in ``help`` names the variable."""
    group.add_argument(option, default=_env(variable), help=help.format(env=f"env {variable}"))


def _add_appliance_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("appliance")
    group.add_argument(
        "--name",
        default="passerelle",
        help="VM name; a pair is NAME-a and NAME-b (default: %(default)s)",
    )
    mode = group.add_mutually_exclusive_group()
    mode.add_argument("--pair", dest="pair", action="store_true", default=True, help=PAIR_HELP)
    mode.add_argument("--single", dest="pair", action="store_false", help="deploy one appliance")
    group.add_argument(
        "--ip",
        action="append",
        default=[],
        metavar="CIDR",
        help="management address with prefix, e.g. 10.0.0.11/24; a pair needs two (repeat the "
        "option or separate with a comma). Without it a single appliance comes up on "
        "192.168.1.101/24",
    )
    group.add_argument("--gateway", help="default gateway, inside the --ip network")
    group.add_argument("--dns", metavar="IP[,IP]", help="DNS servers, comma separated")
    _env_option(
        group,
        "--admin-password",
        "PASSERELLE_ADMIN_PASSWORD",
        "password of the appliances' 'admin' user ({env}); generated and printed when not given",
    )
    wait = parser.add_argument_group("waiting")
    wait.add_argument(
        "--api-port",
        type=int,
        default=443,
        help="port of the appliances' management API (default: %(default)s)",
    )
    wait.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds to wait for each appliance's address, then for its API "
        "(default: %(default)s)",
    )
    wait.add_argument(
        "--poll-interval",
        type=float,
        default=5.0,
        help="seconds between checks while waiting (default: %(default)s)",
    )


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "deploy",
        help="deploy an appliance or an HA pair on vSphere or Hyper-V",
        description="Deploy Passerelle appliances: create the VMs, hand them their network "
        "settings and admin password, start them, wait for their management API, and pair "
        "them. Running the same command again continues where it stopped.",
    )
    platforms = parser.add_subparsers(dest="platform", metavar="PLATFORM", required=True)

    vsphere = platforms.add_parser(
        "vsphere",
        help="deploy from the OVA on vCenter or ESXi",
        description="Import passerelle-<version>.ova on vCenter/ESXi, set the guestinfo keys, "
        "keep the two members of a pair on different hosts (anti-affinity rule in a "
        "cluster), power on, wait for the appliances, pair them.",
    )
    server = vsphere.add_argument_group("vSphere")
    _env_option(
        server, "--server", "PASSERELLE_VSPHERE_SERVER", "vCenter or ESXi: HOST[:PORT] ({env})"
    )
    _env_option(server, "--user", "PASSERELLE_VSPHERE_USER", "login user ({env})")
    _env_option(
        server,
        "--password",
        "PASSERELLE_VSPHERE_PASSWORD",
        "login password ({env}, safer than the command line)",
    )
    server.add_argument(
        "--insecure", action="store_true", help="do not verify the server's TLS certificate"
    )
    server.add_argument("--datacenter", help="datacenter name (needed when there are several)")
    server.add_argument("--cluster", help="cluster to deploy into (anti-affinity rule for a pair)")
    server.add_argument(
        "--hosts",
        metavar="HOST[,HOST]",
        help="host(s) to deploy on: one per appliance, or one for all",
    )
    server.add_argument("--datastore", required=True, help="datastore for the VMs' disks")
    server.add_argument("--network", required=True, help="port group of the management NIC")
    server.add_argument("--ova", type=Path, required=True, help="passerelle-<version>.ova")
    _add_appliance_options(vsphere)
    vsphere.set_defaults(run=run_vsphere)

    hyperv = platforms.add_parser(
        "hyperv",
        help="deploy from the VHDX on Hyper-V hosts over WinRM",
        description="Copy passerelle-<version>.vhdx on each Hyper-V host, create Generation 2 "
        "VMs with Secure Boot (Microsoft UEFI Certificate Authority template), pass the "
        "settings through KVP, start them, wait for the appliances, pair them. Talks to the "
        "hosts over WinRM with NTLM and message encryption.",
    )
    host = hyperv.add_argument_group("Hyper-V")
    host.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="HOST",
        help="Hyper-V host (WinRM); give it twice (or HOST1,HOST2) to put the two members of a "
        "pair on two hosts (env PASSERELLE_HYPERV_HOST)",
    )
    _env_option(
        host,
        "--user",
        "PASSERELLE_HYPERV_USER",
        "Windows account, DOMAIN\\user or user@domain ({env})",
    )
    _env_option(host, "--password", "PASSERELLE_HYPERV_PASSWORD", "its password ({env})")
    host.add_argument(
        "--winrm-port", type=int, help="WinRM port (default: 5985, or 5986 with --https)"
    )
    host.add_argument(
        "--https", action="store_true", help="WinRM over HTTPS instead of encrypted HTTP"
    )
    host.add_argument(
        "--insecure", action="store_true", help="with --https: do not verify the certificate"
    )
    host.add_argument(
        "--vhdx",
        required=True,
        help="passerelle-<version>.vhdx as the HOST sees it: a local path (D:\\images\\...) or "
        "a UNC path (\\\\server\\share\\...). It is copied once per VM",
    )
    host.add_argument(
        "--share-user",
        help="account that may read the --vhdx share (NTLM sessions cannot pass your own "
        "credentials on to a share)",
    )
    _env_option(
        host, "--share-password", "PASSERELLE_HYPERV_SHARE_PASSWORD", "its password ({env})"
    )
    host.add_argument("--switch", required=True, help="virtual switch for the management NIC")
    host.add_argument(
        "--vm-path", help="folder for the VMs on the host (default: the host's VM folder)"
    )
    host.add_argument("--memory", type=int, default=2048, help="MiB (default: %(default)s)")
    host.add_argument("--cpus", type=int, default=2, help="virtual CPUs (default: %(default)s)")
    _add_appliance_options(hyperv)
    hyperv.set_defaults(run=run_hyperv)


def _require(args: argparse.Namespace, *names: str) -> None:
    for name in names:
        if not getattr(args, name):
            option = "--" + name.replace("_", "-")
            raise CommandError(f"{option} is required")


def _plan(args: argparse.Namespace) -> Any:
    from passerelle.provisioning.settings import plan_deployment

    return plan_deployment(
        args.name, args.pair, args.ip, args.gateway, args.dns, args.admin_password
    )


def _timing(args: argparse.Namespace) -> Any:
    from passerelle.provisioning.deployment import Timing

    if args.timeout <= 0 or args.poll_interval <= 0:
        raise CommandError("--timeout and --poll-interval must be positive")
    return Timing(args.timeout, args.timeout, args.poll_interval)


def _print_outcome(outcome: Any) -> None:
    for appliance in outcome.appliances:
        state = "created" if appliance.created else "existing"
        print(f"{appliance.name}\t{appliance.role}\t{appliance.api_url}\t{state}")
    print(f"admin user: {outcome.credentials.username}")
    if outcome.password_generated:
        print(f"admin password (generated, keep it safe): {outcome.credentials.password}")
    if outcome.pairing is not None:
        print(f"HA pairing: {outcome.pairing.state}: {outcome.pairing.detail}")


def _deploy(args: argparse.Namespace, deploy: Callable[..., Any]) -> int:
    """Plan the appliances, let ``deploy`` (a platform's, all but the plan bound) create and
    pair them, then print what it did; a DeployError ends the command with its message."""
    from passerelle.provisioning.errors import DeployError
    from passerelle.provisioning.progress import ConsoleReporter

    try:
        outcome = deploy(
            plan=_plan(args),
            reporter=ConsoleReporter(),
            api_port=args.api_port,
            timing=_timing(args),
        )
    except DeployError as exc:
        raise CommandError(str(exc)) from exc
    _print_outcome(outcome)
    return 0


def run_vsphere(args: argparse.Namespace) -> int:
    from passerelle.provisioning.vsphere.deploy import deploy_vsphere
    from passerelle.provisioning.vsphere.target import VsphereOptions

    _require(args, "server", "user", "password")
    if not args.cluster and not args.hosts:
        raise CommandError("say where the VMs run: --cluster NAME or --hosts HOST[,HOST]")
    options = VsphereOptions(
        datacenter=args.datacenter,
        cluster=args.cluster,
        hosts=[h.strip() for h in (args.hosts or "").split(",") if h.strip()],
        datastore=args.datastore,
        network=args.network,
        ova=args.ova,
    )
    return _deploy(
        args,
        partial(
            deploy_vsphere,
            server=args.server,
            user=args.user,
            password=args.password,
            insecure=args.insecure,
            options=options,
        ),
    )


def run_hyperv(args: argparse.Namespace) -> int:
    from passerelle.provisioning.hyperv.deploy import deploy_hyperv
    from passerelle.provisioning.hyperv.target import HypervOptions

    hosts = [h.strip() for value in args.host for h in value.split(",") if h.strip()]
    if not hosts and _env("PASSERELLE_HYPERV_HOST"):
        hosts = [str(_env("PASSERELLE_HYPERV_HOST"))]
    if not hosts:
        raise CommandError("--host is required (or PASSERELLE_HYPERV_HOST)")
    _require(args, "user", "password")
    if args.share_user and not args.share_password:
        raise CommandError("--share-user needs --share-password")
    options = HypervOptions(
        hosts=hosts,
        vhdx=args.vhdx,
        switch=args.switch,
        vm_path=args.vm_path,
        memory_mib=args.memory,
        cpus=args.cpus,
        share_user=args.share_user,
        share_password=args.share_password,
    )
    return _deploy(
        args,
        partial(
            deploy_hyperv,
            options=options,
            user=args.user,
            password=args.password,
            https=args.https,
            port=args.winrm_port,
            insecure=args.insecure,
        ),
    )
