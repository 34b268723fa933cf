"""`passerelle deploy vsphere`: log in, run the shared deployment sequence, log out."""

from __future__ import annotations

from passerelle.provisioning.deployment import DeploymentOutcome, Timing, run_deployment
from passerelle.provisioning.pairing import Pairing
from passerelle.provisioning.progress import Reporter
from passerelle.provisioning.settings import DeploymentPlan
from passerelle.provisioning.vsphere.connection import connect, disconnect, parse_server
from passerelle.provisioning.vsphere.target import VsphereOptions, VsphereTarget


def deploy_vsphere(
    server: str,
    user: str,
    password: str,
    insecure: bool,
    options: VsphereOptions,
    plan: DeploymentPlan,
    reporter: Reporter,
    api_port: int = 443,
    timing: Timing | None = None,
    pairing: Pairing | None = None,
) -> DeploymentOutcome:
    address = parse_server(server)
    service = connect(address, user, password, insecure)
    try:
        target = VsphereTarget(service, address, options, reporter, insecure)
        return run_deployment(target, plan, reporter, api_port, timing, pairing)
    finally:
        disconnect(service)
