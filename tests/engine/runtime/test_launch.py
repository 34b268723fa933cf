"""Workers forked from the supervisor, over a real engine: they share its memory, serve, hold
none of its files, stop with it and die of SIGTERM like any process."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
import urllib.request
from pathlib import Path

from support.engine import EngineProcess, free_port


def service(port: int, server) -> dict:
    return {
        "name": "web",
        "address": "127.0.0.1",
        "ports": [port],
        "health_check": {"type": "none"},
        "real_servers": [{"address": server.address, "port": server.port}],
    }


def worker_pids(engine: EngineProcess) -> list[int]:
    return [w["pid"] for w in engine.status()["workers"]]


def rollup_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def counters_dirs(pid: int) -> set[Path]:
    """The supervisor's runtime folders, from the counter files it maps."""
    with open(f"/proc/{pid}/maps") as f:
        paths = {line.split()[-1] for line in f if line.rstrip().endswith("/counters")}
    return {Path(p).parent for p in paths}


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may wait for a reaper that never comes)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] != b"Z"


def get(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        return json.loads(response.read())


def test_workers_share_the_supervisors_memory_and_serve(engine, servers):
    a = servers.http("a")
    port = free_port()
    engine.start({"virtual_services": [service(port, a)]})
    for pid in worker_pids(engine):
        # Pages written before the fork and still shared copy-on-write; a worker started as a
        # new interpreter has none (about 19 MB when forked).
        assert rollup_kb(pid, "Shared_Dirty") > 5 * 1024
    for _ in range(4):
        assert get(port)["server"] == "a"


def test_a_forked_worker_holds_none_of_the_supervisors_files(engine):
    engine.start({"virtual_services": []})
    store = engine.db.resolve()
    for pid in worker_pids(engine):
        targets = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        assert not [t for t in targets if t.startswith(str(store))], targets
    supervisor = engine.process.pid
    assert any(
        os.readlink(f"/proc/{supervisor}/fd/{fd}").startswith(str(store))
        for fd in os.listdir(f"/proc/{supervisor}/fd")
    )


def mapped_files(pid: int) -> set[str]:
    with open(f"/proc/{pid}/maps") as f:
        return {line.split()[-1] for line in f if "/" in line}


def test_workers_are_forked_before_the_supervisor_loads_its_store(engine):
    # What the supervisor holds when it forks is resident again in every worker: the
    # management side (here the store's SQLite module) must come after.
    engine.start({"virtual_services": []})
    sqlite = "_sqlite3."
    assert any(sqlite in path for path in mapped_files(engine.process.pid))
    for pid in worker_pids(engine):
        assert not [path for path in mapped_files(pid) if sqlite in path]


def test_workers_serve_a_configuration_without_pydantic(engine, servers):
    # The supervisor validates with the model; a worker gets plain copies of the objects and
    # never imports pydantic, whose compiled core is mapped only once imported.
    a = servers.http("a")
    port = free_port()
    engine.start({"virtual_services": [service(port, a)]})
    assert get(port)["server"] == "a"
    core = "pydantic_core/_pydantic_core"
    assert any(core in path for path in mapped_files(engine.process.pid))
    for pid in worker_pids(engine):
        assert not [path for path in mapped_files(pid) if core in path]


def test_workers_exit_when_the_supervisor_is_killed(tmp_path: Path):
    # Every worker must see its channel close: none may keep another one's end open.
    engine = EngineProcess(tmp_path, workers=3)
    engine.start({"virtual_services": []})
    pids = worker_pids(engine)
    runtime_dirs = counters_dirs(engine.process.pid)  # a killed supervisor leaves them behind
    try:
        engine.process.kill()
        engine.process.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(running(pid) for pid in pids):
            time.sleep(0.05)
        assert not [pid for pid in pids if running(pid)], engine.tail()
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        engine.stop()
        for folder in runtime_dirs:
            shutil.rmtree(folder, ignore_errors=True)


def test_sigterm_ends_a_forked_worker_which_is_replaced(engine, servers):
    a = servers.http("a")
    port = free_port()
    engine.start({"virtual_services": [service(port, a)]})
    victim = worker_pids(engine)[1]
    os.kill(victim, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        workers = engine.status()["workers"]
        if workers[1]["pid"] not in (victim, None) and workers[1]["version"] == 1:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"worker not replaced: {engine.status()}\n{engine.tail()}")
    assert "worker 1 exited with status -15" in engine.tail()
    for _ in range(4):
        assert get(port)["server"] == "a"
