"""``passerelle licence``: the appliance's licence (status, activate) and the vendor's side
(keygen, issue)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from passerelle.cli import CommandError
from passerelle.engine.manage.licence import (
    FEATURES,
    LicenceError,
    LicenceState,
    activate,
    licence_status,
)
from passerelle.engine.manage.licence.signing import issue, load_private_key, new_key_pair
from passerelle.engine.manage.store import store_path


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "licence",
        help="show or activate the licence; issue licence files (vendor)",
        description="The demo licence runs 30 days from the first boot with every feature; a "
        "licence file signed by the vendor and bound to the serial number replaces it. When a "
        "licence expires, virtual services stop accepting new connections; established ones "
        "and management keep working.",
    )
    commands = parser.add_subparsers(dest="licence_command", metavar="ACTION", required=True)
    directory = argparse.ArgumentParser(add_help=False)
    directory.add_argument(
        "--dir",
        metavar="DIR",
        type=Path,
        help="the appliance's state folder, holding identity.json "
        "(default: the folder of $PASSERELLE_DB, else /var/lib/passerelle)",
    )

    status = commands.add_parser(
        "status",
        parents=[directory],
        help="show the licence: kind, days left, what expiry does",
        description="Show the licence; exit 1 when it has expired.",
    )
    status.add_argument("--json", action="store_true", help="print the state as JSON")
    status.set_defaults(run=run_status)

    act = commands.add_parser(
        "activate",
        parents=[directory],
        help="check a licence file and make it this appliance's licence",
        description="Check FILE's signature, serial number and dates, then store it.",
    )
    act.add_argument("file", metavar="FILE", type=Path, help="the licence file from the vendor")
    act.set_defaults(run=run_activate)

    keygen = commands.add_parser(
        "keygen",
        help="vendor: make a licence signing key pair",
        description="Write a new Ed25519 key pair. Keep the private key away from appliances "
        "and from the source repository; ship the public key in the package.",
    )
    keygen.add_argument("--private", required=True, type=Path, metavar="FILE")
    keygen.add_argument("--public", required=True, type=Path, metavar="FILE")
    keygen.set_defaults(run=run_keygen)

    vendor = commands.add_parser(
        "issue",
        help="vendor: write a signed licence file for a serial number",
        description="Sign a licence for appliance SERIAL valid DAYS days from now.",
    )
    vendor.add_argument("--key", required=True, type=Path, metavar="PRIVATE.pem")
    vendor.add_argument("--serial", required=True, help="the appliance's serial, PSL-...")
    vendor.add_argument("--days", required=True, type=int, help="validity in days from now")
    vendor.add_argument(
        "--features",
        default=",".join(FEATURES),
        help=f"comma-separated (default: all: {','.join(FEATURES)})",
    )
    vendor.add_argument("--customer", default="", help="who the licence is for")
    vendor.add_argument(
        "--output", "-o", type=Path, help="the file to write (default: SERIAL.licence.json)"
    )
    vendor.set_defaults(run=run_issue)


def _directory(args: argparse.Namespace) -> Path:
    return args.dir if args.dir is not None else store_path().parent


def describe(state: LicenceState) -> str:
    lines = [f"licence:   {state.kind}", f"serial:    {state.serial or '(none)'}"]
    if state.customer:
        lines.append(f"customer:  {state.customer}")
    if state.expires is not None:
        lines.append(f"expires:   {state.expires:%Y-%m-%d %H:%M} UTC")
    if state.days_left is not None:
        lines.append(f"days left: {state.days_left}")
    lines.append(f"features:  {', '.join(state.features) or '(none)'}")
    if state.note:
        lines.append(f"note:      {state.note}")
    lines.append(state.expiry_effect)
    return "\n".join(lines)


def run_status(args: argparse.Namespace) -> int:
    state = licence_status(_directory(args))
    print(json.dumps(state.to_json(), indent=2) if args.json else describe(state))
    return 1 if state.kind == "expired" else 0


def run_activate(args: argparse.Namespace) -> int:
    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {args.file}: {exc}") from None
    try:
        state = activate(_directory(args), text)
    except LicenceError as exc:
        raise CommandError(f"licence refused: {exc}") from None
    except OSError as exc:
        raise CommandError(f"cannot store the licence: {exc}") from None
    print(describe(state))
    return 0


def _write_new(path: Path, text: str, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise CommandError(f"{path} exists; refusing to overwrite it") from None
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def run_keygen(args: argparse.Namespace) -> int:
    private_pem, public_pem = new_key_pair()
    _write_new(args.private, private_pem, 0o600)
    _write_new(args.public, public_pem, 0o644)
    print(f"private key: {args.private} (keep it secret)\npublic key:  {args.public}")
    return 0


def run_issue(args: argparse.Namespace) -> int:
    if args.days < 1:
        raise CommandError("--days must be at least 1")
    features = tuple(f.strip() for f in args.features.split(",") if f.strip())
    unknown = sorted(set(features) - set(FEATURES))
    if unknown:
        raise CommandError(f"unknown features {', '.join(unknown)}; known: {', '.join(FEATURES)}")
    try:
        key = load_private_key(args.key)
    except LicenceError as exc:
        raise CommandError(str(exc)) from None
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    text = issue(
        key,
        args.serial,
        now + dt.timedelta(days=args.days),
        features=features,
        customer=args.customer,
        issued=now,
    )
    output = args.output or Path(f"{args.serial}.licence.json")
    _write_new(output, text, 0o644)
    print(f"wrote {output}: {args.serial}, {args.days} days, {', '.join(features)}")
    return 0
