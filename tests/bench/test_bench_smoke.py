"""The benchmark suite runs end to end: one cheap scenario in --quick mode produces a table with
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


@pytest.mark.timeout(180)
def test_quick_l4_run_prints_a_table_with_ratios(tmp_path: Path) -> None:
    if os.geteuid() != 0 and any(shutil.which(p) is None for p in NEEDED):
        pytest.skip("haproxy, nginx or wrk missing and cannot be installed without root")
    results = tmp_path / "RESULTS.md"
    command = [
        sys.executable,
        "-m",
        "bench",
        "--quick",
        "--only",
        "l4",
        "--unpinned",
        "--connections",
        "20",
        "--results-file",
        str(results),
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=170)
    if done.returncode == EXIT_TOOLS_UNAVAILABLE:
        pytest.skip(f"benchmark tools unavailable: {done.stderr.strip()}")
    assert done.returncode == 0, done.stdout + done.stderr

    # | l4 | c=20 req/s | higher | <Passerelle> | <HAProxy> | <nginx> | <P/H> | <n/H> |
    row = re.search(r"^\| l4 +\| c=20 req/s +\| higher \|(.*)\|\s*$", done.stdout, re.M)
    assert row, done.stdout
    cells = [cell.strip().rstrip("*") for cell in row.group(1).split("|")]
    assert len(cells) == 5, cells  # three products, two ratios
    figures = [float(cell.replace(",", "")) for cell in cells]
    assert all(value > 0 for value in figures), cells
    passerelle, haproxy, _, ratio, _ = figures
    assert ratio == pytest.approx(passerelle / haproxy, abs=0.01)

    written = results.read_text()
    assert "python -m bench --quick --only l4" in written
    assert "| haproxy | HAProxy version" in written
    assert "c=20 req/s" in written
