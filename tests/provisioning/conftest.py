"""Fixtures of the deployment tests: govmomi's vCenter simulator, a guest agent, fake
appliance APIs, a WS-Management server; everything on loopback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from provisioning_ova import build_test_ova
from provisioning_vcsim import Vcsim, VcsimUnavailable, vcsim_binary


@pytest.fixture(scope="session")
def vcsim_build() -> Path:
    try:
        return vcsim_binary()
    except VcsimUnavailable as exc:
        pytest.skip(f"vCenter simulator unavailable: {exc}")


@pytest.fixture
def vcsim(vcsim_build: Path) -> Iterator[Vcsim]:
    simulator = Vcsim()
    yield simulator
    simulator.stop()


@pytest.fixture(scope="session")
def test_ova(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_ova(tmp_path_factory.mktemp("ova"))
