"""The store follower is synced from two places in the engine (its follow loop and the control
socket); a version reaches the workers once however the two meet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gevent

from passerelle.engine.manage.follow import StoreFollower
from passerelle.engine.manage.store import ConfigStore
from passerelle.engine.model.config import Config


def test_concurrent_syncs_apply_a_version_once(tmp_path: Path) -> None:
    applied: list[int] = []

    def slow_apply(config: Config, number: int) -> dict[str, Any]:
        gevent.sleep(0.05)  # sending to workers yields, as the supervisor's apply does
        applied.append(number)
        return {"version": number, "errors": []}

    with ConfigStore(tmp_path / "passerelle.db") as store:
        store.apply(Config(), author="test")
        follower = StoreFollower(store, slow_apply, interval=3600)
        results = [g.get() for g in gevent.joinall([gevent.spawn(follower.sync) for _ in range(3)])]
    assert applied == [1]
    assert sum(result is not None for result in results) == 1
