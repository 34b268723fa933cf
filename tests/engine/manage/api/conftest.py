"""An in-process management API over real HTTPS for each test, stopped afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.api_client import ApiClient, LiveApi, start_api


@pytest.fixture
def api(tmp_path: Path) -> Iterator[LiveApi]:
    live = start_api(tmp_path)
    yield live
    live.stop()


@pytest.fixture
def admin(api: LiveApi) -> ApiClient:
    return api.client()
