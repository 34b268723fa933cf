"""Tables of medians with ratios to HAProxy, as Markdown that also reads well in a terminal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.placement import Placement
from bench.scenarios import DIRECT, Row, Settings

PRODUCTS = ("Passerelle", "HAProxy", "nginx")
REFERENCE = "HAProxy"
MISSING = "-"
BETTER = {True: "higher", False: "lower", None: "info"}


@dataclass
class ModeResult:
    placement: Placement
    rows: list[Row]
    failure: str = ""  # why the mode could not run at all


def number(value: float | None) -> str:
    if value is None:
        return MISSING
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(row: Row, product: str) -> str:
    mine, reference = row.median(product), row.median(REFERENCE)
    if mine is None or not reference:
        return MISSING
    return f"{mine / reference:.2f}"


def _markdown(header: Sequence[str], lines: list[list[str]]) -> str:
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    numeric = [i >= 3 for i in range(len(header))]

    def render(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if right else c.ljust(w)
            for c, w, right in zip(cells, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(parts) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if r else ("-" * (w + 2))
            for w, r in zip(widths, numeric, strict=True)
        )
        + "|"
    )
    return "\n".join([render(header), rule, *(render(line) for line in lines)])


def table(rows: list[Row]) -> str:
    with_direct = any(DIRECT in row.values for row in rows)
    columns = [*PRODUCTS, DIRECT] if with_direct else list(PRODUCTS)
    header = ["scenario", "metric", "better", *columns]
    header += [f"{p}/{REFERENCE}" for p in PRODUCTS if p != REFERENCE]
    lines = []
    for row in rows:
        cells = [row.scenario, row.metric, BETTER[row.higher_is_better]]
        for product in columns:
            flag = "*" if row.flagged(product) else ""
            cells.append(number(row.median(product)) + flag)
        cells += [_ratio(row, p) for p in PRODUCTS if p != REFERENCE]
        lines.append(cells)
    return _markdown(header, lines)


def notes(rows: list[Row]) -> list[str]:
    return [f"{row.scenario} / {row.metric} / {note}" for row in rows for note in row.notes]


def every_run(rows: list[Row]) -> str:
    lines = []
    for row in rows:
        values = "; ".join(
            f"{product} " + ", ".join(number(v) for v in row.values[product])
            for product in (*PRODUCTS, DIRECT)
            if product in row.values
        )
        lines.append(f"- {row.scenario} / {row.metric}: {values}")
    return "\n".join(lines)


def mode_section(result: ModeResult, with_runs: bool) -> str:
    parts = [f"### {result.placement.describe()}", ""]
    if result.failure:
        parts += [f"Could not run: {result.failure}", ""]
        return "\n".join(parts)
    parts += [table(result.rows), ""]
    found = notes(result.rows)
    if found:
        parts += ["`*` marks a figure with a note:", "", *(f"- {n}" for n in found), ""]
    if with_runs:
        parts += [
            "<details><summary>Every run</summary>",
            "",
            every_run(result.rows),
            "",
            "</details>",
            "",
        ]
    return "\n".join(parts)


def settings_line(settings: Settings) -> str:
    api = "; Passerelle with its management API on (after one API login)"
    return (
        f"{settings.runs} run(s) per figure, median shown; {settings.duration:g} s per load run; "
        f"client connections {', '.join(map(str, settings.connections))}; "
        f"bulk {settings.bulk_mb} MB per run; {settings.idle_connections:,} idle connections; "
        f"latency with {settings.latency_connections} connections pausing a random "
        f"{settings.latency_delay_ms} ms on average between requests"
        + (api if settings.management_api else "")
    )


def machine_table(machine: dict[str, str]) -> str:
    return "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in machine.items())])


def busy_warning(machine: dict[str, str]) -> list[str]:
    """A loud line when something else was using the machine as the run started."""
    try:
        load = float(machine["load average at start"].split()[0])
        cores = int(machine["cores"])
    except (KeyError, ValueError, IndexError):
        return []
    if load < cores / 2:
        return []
    return [
        f"**The machine was busy when this run started (load average {load:.2f} on {cores} "
        "cores): other work shared the CPUs, so these figures are noisy.**",
        "",
    ]


def document(
    command: str, machine: dict[str, str], settings: Settings, results: list[ModeResult]
) -> str:
    return "\n".join(
        [
            "# Benchmark results",
            "",
            "Passerelle, HAProxy and nginx measured side by side in the same run by the suite in",
            "this folder (see README.md for what each scenario measures and how to read it).",
            "Ratios are Passerelle (or nginx) divided by HAProxy; whether above 1 is good depends",
            "on the `better` column.",
            "",
            f"Produced by: `{command}`",
            "",
            *busy_warning(machine),
            settings_line(settings),
            "",
            "## Machine",
            "",
            machine_table(machine),
            "",
            "## Results",
            "",
            *(mode_section(r, with_runs=True) for r in results),
        ]
    )
