"""The benchmark suite runs end to end: cheap scenarios in --quick mode produce a table with
figures for all three products and a ratio to HAProxy. No speed is asserted."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXIT_TOOLS_UNAVAILABLE = 3  # bench.cli: programs missing and not installable here
NEEDED = ("haproxy", "nginx", "wrk", "curl", "openssl")


def run_quick(*options: str) -> subprocess.CompletedProcess[str]:
    """``python -m bench --quick --unpinned OPTIONS``; skips when the tools are missing and
    cannot be installed here."""
    if os.geteuid() != 0 and any(shutil.which(p) is None for p in NEEDED):
        pytest.skip("haproxy, nginx or wrk missing and cannot be installed without root")
    command = [sys.executable, "-m", "bench", "--quick", "--unpinned", *options]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=170)
    if done.returncode == EXIT_TOOLS_UNAVAILABLE:
        pytest.skip(f"benchmark tools unavailable: {done.stderr.strip()}")
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def row_cells(output: str, scenario: str, metric: str) -> list[str]:
    """The cells after the `better` column of one table row."""
    pattern = rf"^\| {scenario} +\| {re.escape(metric)} +\| \w+ +\|(.*)\|\s*$"
    row = re.search(pattern, output, re.M)
    assert row, output
    return [cell.strip() for cell in row.group(1).split("|")]


@pytest.mark.timeout(180)
def test_quick_l4_run_prints_a_table_with_ratios(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    done = run_quick("--only", "l4", "--connections", "20", "--results-file", str(results))

    # | l4 | c=20 req/s | higher | <Passerelle> | <HAProxy> | <nginx> | <P/H> | <n/H> |
    cells = [cell.rstrip("*") for cell in row_cells(done.stdout, "l4", "c=20 req/s")]
    assert len(cells) == 5, cells  # three products, two ratios
    figures = [float(cell.replace(",", "")) for cell in cells]
    assert all(value > 0 for value in figures), cells
    passerelle, haproxy, _, ratio, _ = figures
    assert ratio == pytest.approx(passerelle / haproxy, abs=0.01)

    written = results.read_text()
    assert "python -m bench --quick --unpinned --only l4" in written
    assert "| haproxy | HAProxy version" in written
    assert "c=20 req/s" in written


@pytest.mark.timeout(180)
def test_quick_latency_run_measures_every_product_with_random_pauses() -> None:
    done = run_quick("--only", "latency")

    # Passerelle, HAProxy, nginx, direct, two ratios; a `*` or `-` would mean the pacing script
    # failed in wrk or printed no latency distribution.
    metric = "c=20, random pauses of mean 10 ms: p99 ms"
    cells = row_cells(done.stdout, "latency", metric)
    assert len(cells) == 6, cells
    assert all(float(cell.replace(",", "")) > 0 for cell in cells), cells


@pytest.mark.timeout(180)
def test_quick_tls_run_measures_full_handshakes_of_every_product() -> None:
    done = run_quick("--only", "tls")

    # Passerelle, HAProxy, nginx, two ratios (no direct column: the back ends do not offload
    # TLS). A `*` would mean that a product's handshakes failed or ended without the session
    # tickets that show it finished them.
    for key in ("RSA-2048", "ECDSA P-256"):
        cells = row_cells(done.stdout, "tls", f"{key} proxy CPU µs/full handshake")
        assert len(cells) == 5, cells
        assert not any(cell.endswith("*") for cell in cells), done.stdout
        passerelle, haproxy, nginx, ratio, _ = (float(cell.replace(",", "")) for cell in cells)
        assert min(passerelle, haproxy, nginx) > 0, cells
        assert ratio == pytest.approx(passerelle / haproxy, abs=0.01)
