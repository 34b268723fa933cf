"""`passerelle demo`: the Skype for Business reference deployment, live on loopback."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the engine with sample back ends and the Skype for Business reference setup",
        description="Start sample Skype for Business front ends and Office Online servers on "
        "127.0.2.x, an engine carrying the reference deployment on 127.0.1.x, and print how "
        "to try it. Ctrl-C stops everything.",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where the demo keeps its store and CA certificate (default: a new temporary folder)",
    )
    parser.add_argument("--workers", type=int, default=0, help="worker processes (default: cores)")
    parser.add_argument("--admin", default="127.0.0.1:9900", help="admin listener ADDRESS:PORT")
    parser.add_argument(
        "--management",
        default="127.0.0.1:8443",
        help="HTTPS management API ADDRESS:PORT (default: %(default)s; a free port if it is busy)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from passerelle.demo.run import run_demo

    return run_demo(args.dir, args.workers or None, args.admin, args.management)
