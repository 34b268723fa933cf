"""``passerelle image``: build the appliance image, boot-test an image under QEMU."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from passerelle.cli import CommandError


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "image",
        help="build and boot-test the appliance image",
        description="Build the appliance image (OVA, VHDX, raw disk) and boot-test it.",
    )
    actions = parser.add_subparsers(dest="image_command", metavar="ACTION", required=True)

    build = actions.add_parser(
        "build",
        help="build passerelle-<version>.ova, .vhdx and .raw with SHA-256 checksums",
        description="Build the appliance from this repository with Packer (packer/*.pkr.hcl). "
        "Needs root and the Debian packages packer, mmdebstrap, qemu-system-x86, qemu-utils, "
        "ovmf, syslinux, syslinux-common, mtools, dosfstools. The root filesystem is cached "
        "(see --cache), so only the first build downloads Debian.",
    )
    build.add_argument(
        "--output",
        type=Path,
        default=Path("artifacts/image"),
        help="output directory (default: %(default)s)",
    )
    build.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a variable of packer/variables.pkr.hcl (VALUE in JSON for numbers, booleans "
        "and lists, e.g. --var disk_size_mib=6144 --var 'packages=[...]'); repeatable",
    )
    build.add_argument(
        "--cache",
        type=Path,
        help="layer cache (default: $PASSERELLE_IMAGE_CACHE or ~/.cache/passerelle/image)",
    )
    build.add_argument(
        "--keep-work", action="store_true", help="keep the work directory and build log"
    )
    build.set_defaults(run=run_build)

    boot = actions.add_parser(
        "boot-test",
        help="boot an image under QEMU and check that the appliance serves",
        description="Boot IMAGE (.ova, .vmdk, .vhdx or .raw) under QEMU (TCG) on a private "
        "user-mode network (restrict=on) with ports 443 and 8080 of the appliance address "
        "(192.168.1.101, or the ip of --metadata) forwarded to loopback ports, check it, stop "
        "it. The full check (--check appliance) logs in with the admin password first boot "
        "printed on the serial console (or the one in --metadata), checks the serial number, "
        "hostname, address and demo licence the API reports and the management certificate, "
        "then creates a virtual service on port 8080 and fetches through it. The image itself "
        "is never written.",
    )
    boot.add_argument("image", type=Path, metavar="IMAGE")
    boot.add_argument(
        "--firmware",
        choices=["auto", "bios", "uefi", "uefi-secure"],
        default="auto",
        help="auto: UEFI with Secure Boot for .vhdx (Hyper-V generation 2), BIOS otherwise",
    )
    boot.add_argument(
        "--check",
        choices=["tls", "http", "health", "appliance"],
        default="appliance",
        help="what counts as serving: a TLS handshake; an HTTP answer over TLS (any status in "
        "--accept-status); /api/v1/health answering 200; or that and the first-boot facts "
        "and a virtual service carrying traffic (default: %(default)s)",
    )
    boot.add_argument(
        "--metadata",
        type=Path,
        metavar="FILE",
        help="JSON settings for first boot (ip, netmask, gateway, dns, hostname, "
        "admin_password), handed over zero-touch through QEMU fw_cfg opt/passerelle/metadata",
    )
    boot.add_argument(
        "--accept-status",
        default="200,404",
        help="HTTP statuses of GET /api/v1/health accepted by --check http (default: %(default)s)",
    )
    boot.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait (default: %(default)s)"
    )
    boot.add_argument(
        "--port", type=int, default=0, help="loopback port of the forward (default: a free one)"
    )
    boot.add_argument(
        "--service-port",
        type=int,
        default=0,
        help="loopback port forwarded to the test's virtual service (default: a free one)",
    )
    boot.add_argument("--serial-log", type=Path, help="keep the guest's serial console output here")
    boot.add_argument("--json", action="store_true", help="print the result as JSON")
    boot.set_defaults(run=run_boot_test)


def _parse_vars(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise CommandError(f"--var {pair!r}: expected NAME=VALUE")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text  # a plain string needs no JSON quotes
        values[name] = value if isinstance(value, str | bool | int | float | list) else text
    return values


def run_build(args: argparse.Namespace) -> int:
    from passerelle.image.build import BuildError, BuildOptions, build_image
    from passerelle.image.steps import StepFailed
    from passerelle.image.variables import VariableError

    options = BuildOptions(
        output_dir=args.output, variables=_parse_vars(args.var), keep_work=args.keep_work
    )
    if args.cache:
        options.cache = args.cache
    try:
        result = build_image(options)
    except (BuildError, VariableError) as exc:
        raise CommandError(str(exc)) from None
    except StepFailed as exc:
        raise CommandError(str(exc)) from None
    print(f"OVA:   {result.ova} ({result.ova.stat().st_size / 2**20:.0f} MiB)")
    print(f"VHDX:  {result.vhdx} ({result.vhdx.stat().st_size / 2**20:.0f} MiB)")
    print(f"raw:   {result.raw} ({result.raw.stat().st_blocks * 512 / 2**20:.0f} MiB allocated)")
    print(f"SHA-256 checksums: {result.checksums}")
    layers = ", ".join(result.cached_layers) or "none"
    print(f"build time: {sum(result.timings.values()):.0f} s; cached layers: {layers}")
    return 0


def run_boot_test(args: argparse.Namespace) -> int:
    from passerelle.image.boottest import BootTestError, BootTestOptions, boot_test

    statuses = {int(s) for s in args.accept_status.split(",") if s.strip().isdigit()}
    if not statuses:
        raise CommandError("--accept-status: expected comma-separated HTTP status codes")
    options = BootTestOptions(
        image=args.image,
        firmware=args.firmware,
        check=args.check,
        accept_status=frozenset(statuses),
        timeout=args.timeout,
        port=args.port,
        service_port=args.service_port,
        metadata=args.metadata,
        serial_log=args.serial_log,
    )
    try:
        result = boot_test(options)
    except BootTestError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(result.summary())
    return 0
