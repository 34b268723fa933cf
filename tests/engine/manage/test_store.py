"""The versioned SQLite configuration store."""

from __future__ import annotations

import hashlib
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from passerelle.engine.manage.store import (
    ConfigStore,
    CorruptVersionError,
    StaleVersionError,
    StoreError,
    canonical_json,
    store_path,
)
from passerelle.engine.model import Config, validate_config


def service_config(*names: str, port: int = 80) -> Config:
    return validate_config(
        {
            "virtual_services": [
                {
                    "name": name,
                    "address": f"127.0.0.{i + 1}",
                    "ports": [port],
                    "real_servers": [{"address": "127.0.1.1", "port": 8000 + i}],
                    "persistence": {"mode": "source_ip"},
                    "health_check": {"type": "http", "path": "/ping"},
                }
                for i, name in enumerate(names)
            ]
        }
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "passerelle.db"


@pytest.fixture
def store(db: Path) -> Iterator[ConfigStore]:
    with ConfigStore(db) as opened:
        yield opened


def test_empty_store(store: ConfigStore, db: Path) -> None:
    assert store.current() == (None, Config())
    assert store.latest_number() == 0
    assert store.history() == []
    with pytest.raises(KeyError):
        store.get(1)
    # created with its parent directory, private (it holds certificate keys), in WAL mode
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_round_trip(store: ConfigStore, db: Path) -> None:
    config = service_config("web", "api")
    before = time.time()
    version = store.apply(config, author="alice", comment="first")
    assert version.number == 1
    assert version.author == "alice" and version.comment == "first"
    assert before <= version.created <= time.time()
    assert version.digest == hashlib.sha256(canonical_json(config).encode()).hexdigest()
    assert store.current() == (version, config)
    assert store.get(1) == (version, config)
    assert store.latest_number() == 1
    # another connection (as another process would open) sees the committed version
    with ConfigStore(db) as other:
        assert other.current() == (version, config)


def test_canonical_json_is_sorted_and_compact() -> None:
    text = canonical_json(service_config("web"))
    assert ", " not in text and ": " not in text
    assert text.index('"certificates"') < text.index('"virtual_services"')


def test_history_is_newest_first(store: ConfigStore) -> None:
    for i in range(5):
        store.apply(service_config(f"vs{i}"), comment=f"change {i}")
    history = store.history()
    assert [v.number for v in history] == [5, 4, 3, 2, 1]
    assert [v.comment for v in history] == [f"change {i}" for i in (4, 3, 2, 1, 0)]
    assert [v.number for v in store.history(limit=2)] == [5, 4]
    assert store.get(2)[1] == service_config("vs1")


def test_identical_apply_adds_no_version(store: ConfigStore) -> None:
    first = store.apply(service_config("web"), comment="first")
    again = store.apply(service_config("web"), comment="again")
    assert again == first
    assert store.history() == [first]
    assert store.apply_if_changed(service_config("web")) == (first, False)
    version, added = store.apply_if_changed(service_config("other"))
    assert added and version.number == 2


def test_expected_version_guards_against_concurrent_edits(db: Path) -> None:
    with ConfigStore(db) as alice, ConfigStore(db) as bob:
        assert alice.apply(service_config("a"), expected=0).number == 1
        seen_by_bob = bob.latest_number()
        alice.apply(service_config("a", "b"))
        with pytest.raises(StaleVersionError) as info:
            bob.apply(service_config("c"), expected=seen_by_bob)
        assert (info.value.expected, info.value.latest) == (1, 2)
        # the refused apply left nothing behind
        assert bob.current()[1] == service_config("a", "b")
        assert bob.latest_number() == 2
        assert bob.apply(service_config("c"), expected=2).number == 3


def test_rollback_applies_an_old_version_again(store: ConfigStore) -> None:
    store.apply(service_config("web"))
    store.apply(service_config("web", "api"))
    version = store.rollback(1, author="bob")
    assert version.number == 3
    assert version.comment == "rollback to 1" and version.author == "bob"
    assert store.current() == (version, service_config("web"))
    assert store.get(2)[1] == service_config("web", "api")  # history is not rewritten
    # rolling back to what is already current changes nothing
    assert store.rollback_if_changed(1) == (version, False)
    with pytest.raises(KeyError):
        store.rollback(42)


def test_history_pruning_keeps_the_newest(db: Path) -> None:
    with ConfigStore(db, keep=3) as store:
        for i in range(5):
            store.apply(service_config(f"vs{i}"))
        assert [v.number for v in store.history()] == [5, 4, 3]
        with pytest.raises(KeyError):
            store.get(2)
        assert store.apply(service_config("new")).number == 6
    with pytest.raises(ValueError):
        ConfigStore(db, keep=0)


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from passerelle.engine.manage.store import ConfigStore
    from passerelle.engine.model import validate_config

    db, worker, count, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    store = ConfigStore(db)
    Path(f"{go}.ready{worker}").touch()
    deadline = time.monotonic() + 10
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.001)
    for i in range(count):
        vs = {"name": f"w{worker}-{i}", "address": "127.0.0.1", "ports": [80]}
        version = store.apply(validate_config({"virtual_services": [vs]}), author=f"w{worker}")
        print(version.number, flush=True)
    store.close()
    """
)


def test_concurrent_processes_get_distinct_numbers(db: Path, tmp_path: Path) -> None:
    workers, count = 4, 15
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), str(w), str(count), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    # start them together once all have the store open, so they really do race
    deadline = time.monotonic() + 20
    while len(list(tmp_path.glob("go.ready*"))) < workers and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    numbers: list[int] = []
    for proc in procs:
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        numbers += [int(line) for line in out.split()]
    assert sorted(numbers) == list(range(1, workers * count + 1))
    with ConfigStore(db) as store:
        history = store.history(limit=1000)
        assert [v.number for v in history] == list(range(workers * count, 0, -1))
        names = {store.get(v.number)[1].virtual_services[0].name for v in history}
        assert names == {f"w{w}-{i}" for w in range(workers) for i in range(count)}


def test_garbage_file_is_a_clear_error(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a database, just some text" * 200)
    with pytest.raises(StoreError, match="cannot open"):
        ConfigStore(db)


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot open"):
        ConfigStore(blocker / "passerelle.db")


def test_tampered_row_is_reported_not_returned(db: Path) -> None:
    with ConfigStore(db) as store:
        store.apply(service_config("web"))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE versions SET body = replace(body, '8000', '9000')")
    with ConfigStore(db) as store:
        with pytest.raises(CorruptVersionError, match=r"version 1.*digest"):
            store.current()
        assert store.latest_number() == 1
        assert store.history()[0].number == 1  # history still lists it


def test_invalid_stored_config_names_the_field(db: Path) -> None:
    with ConfigStore(db) as store:
        store.apply(service_config("web"))
    body = canonical_json(service_config("web")).replace('"ports":[80]', '"ports":[0]')
    digest = hashlib.sha256(body.encode()).hexdigest()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE versions SET body = ?, digest = ?", (body, digest))
    with ConfigStore(db) as store, pytest.raises(CorruptVersionError) as info:
        store.get(1)
    assert info.value.number == 1
    assert "virtual_services[0].ports[0]" in info.value.reason


def test_store_from_a_newer_release_is_refused(db: Path) -> None:
    ConfigStore(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version=99")
    with pytest.raises(StoreError, match="newer"):
        ConfigStore(db)


def test_store_path_prefers_explicit_then_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PASSERELLE_DB", raising=False)
    assert store_path() == Path("/var/lib/passerelle/passerelle.db")
    monkeypatch.setenv("PASSERELLE_DB", str(tmp_path / "env.db"))
    assert store_path() == tmp_path / "env.db"
    assert store_path(tmp_path / "x.db") == tmp_path / "x.db"
