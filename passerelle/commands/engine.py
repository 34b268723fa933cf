"""`passerelle engine`: the appliance daemon (what systemd runs)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_DB = "/var/lib/passerelle/passerelle.db"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "engine",
        help="run the load balancer engine",
        description="Run the engine: one worker per core serving the virtual services of the "
        "configuration store, following every change applied to it.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="a configuration file (YAML or JSON) to apply to the store before starting",
    )
    parser.add_argument(
        "--db",
        default=os.environ.get("PASSERELLE_DB", DEFAULT_DB),
        help="configuration store path (default: $PASSERELLE_DB or %(default)s)",
    )
    parser.add_argument("--workers", type=int, default=0, help="worker processes (default: cores)")
    parser.add_argument(
        "--admin",
        default="127.0.0.1:9900",
        help="address:port of the admin listener for /metrics, /stats, /status "
        "(default: %(default)s; 'off' to disable)",
    )
    parser.add_argument(
        "--management",
        default="127.0.0.1:8443",
        help="address:port of the HTTPS management API and web UI; never a virtual service's "
        "address (default: %(default)s; 'off' to disable)",
    )
    parser.add_argument(
        "--management-cert",
        type=Path,
        help="PEM certificate for the management listener (default: a self-signed one made in "
        "the store's folder on first start)",
    )
    parser.add_argument("--management-key", type=Path, help="PEM private key of --management-cert")
    parser.add_argument(
        "--admin-password-file",
        type=Path,
        help="when no user exists yet, create 'admin' with the password in this file "
        "(else $PASSERELLE_ADMIN_PASSWORD, else a generated one, logged once and written to "
        "initial-admin-password beside the store)",
    )
    parser.add_argument(
        "--ha-state-file",
        type=Path,
        default=Path("/run/passerelle/ha-state"),
        help="where the HA role is written for the console (default: %(default)s)",
    )
    parser.add_argument(
        "--ha-run-dir",
        type=Path,
        default=Path("/run/passerelle/ha"),
        help="keepalived's configuration and pid files for an HA pair (default: %(default)s)",
    )
    parser.add_argument(
        "--keepalived",
        default="keepalived",
        help="the keepalived program run for an HA pair (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,  # "warning" and "WARNING" alike, as syslog levels are usually written
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from passerelle.engine.manage.daemon import run_engine

    return run_engine(
        db=Path(args.db),
        config_file=args.config,
        workers=args.workers or None,
        admin=None if args.admin == "off" else args.admin,
        log_level=args.log_level,
        management=None if args.management == "off" else args.management,
        management_cert=args.management_cert,
        management_key=args.management_key,
        admin_password_file=args.admin_password_file,
        ha_state_file=args.ha_state_file,
        ha_run_dir=args.ha_run_dir,
        keepalived=args.keepalived,
    )
