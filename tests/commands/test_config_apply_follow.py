"""The engine's store follower notices what `passerelle config apply` and the REST API store as
soon as it is written, not at its next poll: the poll interval here is far longer than any wait,
so only the write-ahead log watch can explain a prompt notice."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
from gevent.event import Event

from passerelle.engine.manage.follow import StoreFollower, WriteWatch
from passerelle.engine.manage.store import ConfigStore
from passerelle.engine.model.config import Config
from passerelle.engine.model.errors import validate_config

NEVER = 3600.0  # a poll interval no test lives to see
WAIT = 10.0  # generous: a loaded machine must not fail the test, a missed write still does


def service(port: int) -> dict[str, Any]:
    return {
        "name": "web",
        "address": "127.0.0.1",
        "ports": [8080],
        "real_servers": [{"address": "127.0.0.1", "port": port}],
    }


class Recorder:
    """Stands in for the supervisor: remembers what it was asked to apply."""

    def __init__(self) -> None:
        self.applied: list[tuple[int, Config]] = []
        self.changed = Event()

    def __call__(self, config: Config, version: int) -> dict[str, Any]:
        self.applied.append((version, config))
        self.changed.set()
        return {"version": version, "errors": []}

    def wait_for(self, version: int) -> Config:
        deadline = gevent.Timeout(WAIT)
        with deadline:
            while not any(number == version for number, _ in self.applied):
                self.changed.wait()
                self.changed.clear()
        return next(config for number, config in self.applied if number == version)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ConfigStore]:
    opened = ConfigStore(tmp_path / "passerelle.db")
    opened.apply(validate_config({"virtual_services": [service(9001)]}), author="test")
    yield opened
    opened.close()


@pytest.fixture
def following(store: ConfigStore) -> Iterator[Recorder]:
    recorder = Recorder()
    follower = StoreFollower(store, recorder, interval=NEVER)
    follower.sync()  # what the engine does before it starts following
    assert [number for number, _ in recorder.applied] == [1]
    recorder.applied.clear()
    runner = gevent.spawn(follower.run)
    gevent.sleep(0)  # let it start watching
    yield recorder
    runner.kill()


def test_a_version_applied_by_another_process_is_noticed_without_waiting_for_the_poll(
    store: ConfigStore, following: Recorder, tmp_path: Path
) -> None:
    file = tmp_path / "new.json"
    file.write_text(json.dumps({"virtual_services": [service(9002)]}))
    done = subprocess.run(
        [sys.executable, "-m", "passerelle", "config", "apply", str(file), "--db", str(store.path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "applied version 2"

    config = following.wait_for(2)
    assert config.service("web").real_servers[0].port == 9002


def test_a_version_stored_in_this_process_is_noticed_at_once(
    store: ConfigStore, following: Recorder
) -> None:
    # The REST API writes through the engine's own store object, between two of its greenlets.
    for version, port in ((2, 9002), (3, 9003)):
        store.apply(validate_config({"virtual_services": [service(port)]}), author="api")
        assert following.wait_for(version).service("web").real_servers[0].port == port
    assert [number for number, _ in following.applied] == [2, 3]


def test_writes_that_store_no_version_apply_nothing(
    store: ConfigStore, following: Recorder
) -> None:
    # The same configuration again stores nothing new; the follower must not re-apply.
    store.apply(validate_config({"virtual_services": [service(9001)]}), author="test")
    gevent.sleep(0.3)
    assert following.applied == []


def test_the_watch_waits_for_a_missing_file_and_for_a_replaced_one(tmp_path: Path) -> None:
    path = tmp_path / "store.db-wal"
    watch = WriteWatch(path)
    try:
        assert watch.fd >= 0, "inotify is expected on Linux"
        assert not watch.watching
        assert watch.wait(0.01) is False  # no file yet: waiting is sleeping

        path.write_bytes(b"x")
        assert watch.wait(0.01) is False  # now watched; the write came before the watch
        assert watch.watching
        with path.open("ab") as log:
            log.write(b"frame")
        assert watch.wait(WAIT) is True
        assert watch.wait(0.01) is False  # every pending event was read

        path.unlink()
        assert watch.wait(0.05) is False
        assert not watch.watching  # the deleted file's watch is gone
        path.write_bytes(b"new")
        watch.wait(0.01)
        with path.open("ab") as log:
            log.write(b"frame")
        assert watch.wait(WAIT) is True
    finally:
        watch.close()


def test_an_idle_store_whose_log_is_watched_is_seldom_polled(
    store: ConfigStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every wake-up of the supervisor lands on a worker's core; with the log watched the poll is
    # only a safety net. The default interval is kept for a store whose log is not watched.
    queries: list[int] = []
    latest = store.latest_number

    def counted() -> int:
        queries.append(1)
        return latest()

    monkeypatch.setattr(store, "latest_number", counted)
    follower = StoreFollower(store, Recorder())
    runner = gevent.spawn(follower.run)
    gevent.sleep(1.5)
    runner.kill()
    # the first sync, then polls after 0.05, 0.1, 0.2 and 0.4 s: the wait doubles towards 2 s
    # (a poll every 50 ms would have made about 30)
    assert 1 <= len(queries) <= 6, len(queries)
