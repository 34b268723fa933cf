"""``passerelle firstboot``: the appliance's one-time set-up, run by systemd at boot."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from passerelle.cli import CommandError
from passerelle.firstboot.facts import gather_facts
from passerelle.firstboot.first_boot import load_report, run_first_boot
from passerelle.firstboot.options import add_root_arguments, paths_and_system
from passerelle.firstboot.paths import Paths
from passerelle.firstboot.reset import factory_reset
from passerelle.firstboot.sources import default_sources
from passerelle.firstboot.system import System, SystemActionError

log = logging.getLogger("passerelle.firstboot")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "firstboot",
        help="set up a new appliance (network, identity, certificate, admin password)",
        description="On the first boot: take the network settings from the hypervisor "
        "(QEMU fw_cfg, VMware guestinfo or OVF properties, Hyper-V KVP) or use 192.168.1.101/24, "
        "create the serial number and start the demo licence, make SSH host keys and the "
        "management certificate, and set the initial admin password. Does nothing once done.",
    )
    add_root_arguments(parser)
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--show", action="store_true", help="print the appliance facts as JSON and exit"
    )
    what.add_argument(
        "--factory-reset",
        action="store_true",
        help="erase configuration and secrets so that the next boot sets the appliance up "
        "again (the serial number and licence start are kept)",
    )
    parser.add_argument(
        "--reboot", action="store_true", help="with --factory-reset: restart the appliance now"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="passerelle firstboot: %(message)s"
    )
    if args.reboot and not args.factory_reset:
        raise CommandError("--reboot goes with --factory-reset")
    paths, system = paths_and_system(args)
    if args.show:
        return _show(paths)
    if args.factory_reset:
        return _factory_reset(paths, system, reboot=args.reboot)
    return _first_boot(paths, system)


def _first_boot(paths: Paths, system: System) -> int:
    _load_fw_cfg(paths, system)
    try:
        report = run_first_boot(paths, system, default_sources(paths))
    except (SystemActionError, OSError) as exc:
        raise CommandError(f"first boot failed: {exc}") from None
    if report is None:
        done = load_report(paths)
        when = f" on {done.completed:%Y-%m-%d %H:%M:%S} UTC" if done else ""
        print(f"first boot already done{when}; nothing to do (--factory-reset to redo it)")
    return 0


def _load_fw_cfg(paths: Paths, system: System) -> None:
    """Under QEMU the settings may come through fw_cfg, whose sysfs view is a kernel module."""
    try:
        vendor = (paths.dmi_dir / "sys_vendor").read_text(errors="replace")
    except OSError:
        return
    if "qemu" not in vendor.lower() or paths.under("/sys/firmware/qemu_fw_cfg").exists():
        return
    try:
        system.load_module("qemu_fw_cfg")
    except SystemActionError as exc:
        log.info("no fw_cfg: %s", exc)


def _show(paths: Paths) -> int:
    facts = gather_facts(paths)
    if facts.identity is None:
        raise CommandError(f"first boot has not run under {paths.root} (no identity yet)")
    json.dump(facts.to_json(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _factory_reset(paths: Paths, system: System, *, reboot: bool) -> int:
    removed = factory_reset(paths)
    print(f"factory reset: {len(removed)} items removed; the next boot sets the appliance up again")
    if reboot:
        try:
            system.reboot()
        except SystemActionError as exc:
            raise CommandError(f"restart failed: {exc}") from None
    return 0
