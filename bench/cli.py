"""`python -m bench`: every selected scenario against Passerelle, HAProxy and nginx in one run."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from bench import machine, tools
from bench.backends import BackEnds
from bench.placement import Placement, pinned, unpinned
from bench.procs import raise_fd_limit
from bench.proxies import PRODUCTS, Proxy
from bench.report import ModeResult, document, machine_table, mode_section, settings_line
from bench.scenarios import RUN_ORDER, SCENARIOS, Rig, Row, Settings
from bench.services import Certificate, Service, make_certificate

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
EXIT_TOOLS_UNAVAILABLE = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark Passerelle side by side with HAProxy and nginx on loopback.",
    )
    parser.add_argument(
        "--only",
        metavar="LIST",
        help=f"comma-separated scenarios (default: all): {','.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--mode",
        choices=("both", "pinned", "unpinned"),
        default="both",
        help="pinned: proxy on CPU 0, load and back ends on CPU 1, one worker/thread each; "
        "unpinned: two workers/threads each, no placement (default: both)",
    )
    parser.add_argument("--pinned", dest="mode", action="store_const", const="pinned")
    parser.add_argument("--unpinned", dest="mode", action="store_const", const="unpinned")
    parser.add_argument("--duration", type=float, help="seconds per load run (default 10)")
    parser.add_argument("--runs", type=int, help="runs per figure; the median is shown (3)")
    parser.add_argument(
        "--connections", metavar="LIST", help="client connection counts (default 50,200)"
    )
    parser.add_argument("--bulk-mb", type=int, help="MB per bulk run (default 1000)")
    parser.add_argument(
        "--idle-connections", type=int, help="idle connections held open (default 10000)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 run of 2 s each, smaller bulk and idle counts"
    )
    parser.add_argument(
        "--write-results",
        action="store_true",
        help=f"write the tables and this command line to {RESULTS.name}",
    )
    parser.add_argument("--results-file", type=Path, help=f"where to write (default {RESULTS})")
    parser.add_argument(
        "--no-install", action="store_true", help="never apt-get install missing programs"
    )
    parser.add_argument(
        "--keep-workdir", action="store_true", help="keep configurations and logs for a look"
    )
    parser.add_argument(
        "--management-api",
        action="store_true",
        help="run Passerelle with its management API (REST API, web UI) on in every scenario, "
        "as the appliance does; by default only the apply scenario turns it on",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser


def _numbers(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def settings_from(args: argparse.Namespace) -> Settings:
    quick = args.quick
    return Settings(
        duration=args.duration or (2.0 if quick else 10.0),
        runs=args.runs or (1 if quick else 3),
        connections=_numbers(args.connections) if args.connections else (50, 200),
        bulk_mb=args.bulk_mb or (200 if quick else 1000),
        idle_connections=args.idle_connections or (1000 if quick else 10000),
        management_api=args.management_api,
    )


def selected(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    if not args.only:
        return list(RUN_ORDER)
    wanted = [part.strip() for part in args.only.split(",") if part.strip()]
    unknown = [key for key in wanted if key not in SCENARIOS]
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    return [key for key in RUN_ORDER if key in wanted]


def _services(keys: list[str], backends: BackEnds, certs: dict[str, Certificate]) -> list[Service]:
    by_name: dict[str, Service] = {}
    for key in keys:
        for service in SCENARIOS[key].services(backends, certs):
            by_name.setdefault(service.name, service)
    return list(by_name.values())


def run_mode(placement: Placement, keys: list[str], settings: Settings, keep: bool) -> ModeResult:
    workdir = Path(tempfile.mkdtemp(prefix=f"passerelle-bench-{placement.name}-"))
    workdir.chmod(0o755)  # nginx workers run as an unprivileged user
    certs = {
        "rsa": make_certificate(workdir, "bench-rsa", "rsa-2048"),
        "ecdsa": make_certificate(workdir, "bench-ecdsa", "ecdsa-p256"),
    }
    backends = BackEnds(workdir, placement, certs["ecdsa"])
    proxies: list[Proxy] = []
    rows: list[Row] = []
    try:
        backends.start()
        services = _services(keys, backends, certs)
        for product in PRODUCTS:
            proxy = product(workdir, placement, management_api=settings.management_api)
            proxies.append(proxy)
            try:
                proxy.start(services)
            except Exception as exc:
                raise RuntimeError(
                    f"{proxy.product} did not start: {exc}\n{proxy.log_tail()}"
                ) from exc
        rig = Rig(placement, settings, proxies, backends, certs, workdir)
        for key in keys:
            print(f"  [{placement.name}] {key}: {SCENARIOS[key].title}", file=sys.stderr)
            found = SCENARIOS[key].measure(rig)
            for proxy in proxies:
                if not proxy.pids():
                    found[0].note(proxy.product, f"process gone: {proxy.log_tail()[-400:]}")
            rows += found
    except Exception as exc:
        return ModeResult(placement, rows, failure=str(exc))
    finally:
        for proxy in proxies:
            proxy.stop()
        backends.stop()
        if keep:
            print(f"  work folder kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    order = {key: i for i, key in enumerate(SCENARIOS)}
    rows.sort(key=lambda row: order[row.scenario])  # stable: metrics keep their order
    return ModeResult(placement, rows)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        for key, scenario in SCENARIOS.items():
            print(f"{key:10} {scenario.title}")
        return 0
    keys = selected(args, parser)
    settings = settings_from(args)
    try:
        tools.ensure_installed(allow_install=not args.no_install)
    except tools.ToolsUnavailable as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return EXIT_TOOLS_UNAVAILABLE
    raise_fd_limit()
    try:
        placements = {
            "pinned": lambda: [pinned()],
            "unpinned": lambda: [unpinned()],
            "both": lambda: [pinned(), unpinned()],
        }[args.mode]()
    except RuntimeError as exc:
        parser.error(str(exc))
    info = machine.describe()
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    print(machine_table(info), "", settings_line(settings), "", sep="\n")
    results = []
    for placement in placements:
        result = run_mode(placement, keys, settings, args.keep_workdir)
        results.append(result)
        print(mode_section(result, with_runs=False))
    if args.write_results or args.results_file:
        path = args.results_file or RESULTS
        path.write_text(document(command.strip(), info, settings, results))
        print(f"written to {path}", file=sys.stderr)
    return 1 if any(r.failure for r in results) else 0
