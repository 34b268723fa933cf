"""keepalived's track script: ``python -m passerelle.engine.ha.check URL``.

Exit 0 when the local engine answers its health URL with 200 within the timeout, else 1; two
failures in a row (``check_retries``) put the VRRP instance in fault, so the peer takes over.
"""

from __future__ import annotations

import argparse
import ssl
import sys
import urllib.error
import urllib.request


def healthy(url: str, timeout: float) -> bool:
    # The engine's own self-signed management certificate: nothing to verify it against.
    context = ssl._create_unverified_context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the engine's health URL, e.g. http://127.0.0.1:9900/healthz")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds (default: 1)")


def run(args: argparse.Namespace) -> int:
    return 0 if healthy(args.url, args.timeout) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="passerelle ha check", description="Exit 0 if the local engine is healthy."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
