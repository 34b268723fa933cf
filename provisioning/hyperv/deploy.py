"""`passerelle deploy hyperv`: one WinRM runner per host, then the shared sequence."""

from __future__ import annotations

from passerelle.provisioning.deployment import DeploymentOutcome, Timing, run_deployment
from passerelle.provisioning.hyperv.target import HypervOptions, HypervTarget
from passerelle.provisioning.hyperv.winrm_runner import PowerShellRunner
from passerelle.provisioning.pairing import Pairing
from passerelle.provisioning.progress import Reporter
from passerelle.provisioning.settings import DeploymentPlan


def deploy_hyperv(
    options: HypervOptions,
    user: str,
    password: str,
    reporter: Reporter,
    plan: DeploymentPlan,
    https: bool = False,
    port: int | None = None,
    insecure: bool = False,
    api_port: int = 443,
    timing: Timing | None = None,
    pairing: Pairing | None = None,
) -> DeploymentOutcome:
    runners = [
        PowerShellRunner(host, user, password, https=https, port=port, insecure=insecure)
        for host in options.hosts
    ]
    target = HypervTarget(runners, options, reporter)
    return run_deployment(target, plan, reporter, api_port, timing, pairing)
