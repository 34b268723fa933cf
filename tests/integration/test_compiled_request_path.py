"""The request path compiled by mypyc: a real engine's workers load it, serve with it, and
run from source when told to."""

from __future__ import annotations

import http.client
import json
from collections import Counter
from pathlib import Path

import pytest

from passerelle import compile_hot_path
from passerelle.engine import compiled
from passerelle.engine.compiled import BUILT_MODULES, SWITCH

from support.engine import free_port
from support.http_peers import l7_service

RUNTIME_LIBRARY = "passerelle_hot_path__mypyc"


def web_service(port: int, backends) -> dict:
    added = {"response_add": {"X-Proxy": "passerelle"}}
    service = l7_service(*backends, headers=added)
    listener = {"name": "web", "address": "127.0.0.1", "ports": [port]}
    return {"virtual_services": [{**listener, **service}]}


def serve_requests(port: int, count: int) -> Counter:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    seen: Counter = Counter()
    for _ in range(count):
        conn.request("GET", "/", headers={"Host": "app.test"})
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, body
        assert response.getheader("X-Proxy") == "passerelle"
        seen[json.loads(body)["server"]] += 1
    conn.close()
    return seen


def mapped_files(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_workers_serve_with_the_compiled_request_path(engine, servers):
    backends = [servers.http("a"), servers.http("b")]
    port = free_port()
    engine.start(web_service(port, backends))
    assert engine.status()["request_path"] == "compiled", "run scripts/setup to build it"
    assert serve_requests(port, 6) == {"a": 3, "b": 3}
    for worker in engine.status()["workers"]:
        assert RUNTIME_LIBRARY in mapped_files(worker["pid"])


def test_switch_runs_the_request_path_from_source(engine, servers):
    engine.extra_env[SWITCH] = "0"
    backends = [servers.http("a"), servers.http("b")]
    port = free_port()
    engine.start(web_service(port, backends))
    assert engine.status()["request_path"] == f"from source ({SWITCH}=0)"
    assert serve_requests(port, 6) == {"a": 3, "b": 3}
    for worker in engine.status()["workers"]:
        assert RUNTIME_LIBRARY not in mapped_files(worker["pid"])


@pytest.fixture
def build(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in engine tree with a manifest that matches its sources."""
    root, out = tmp_path / "engine", tmp_path / "engine" / "_compiled"
    out.mkdir(parents=True)
    modules = {}
    for module in BUILT_MODULES:
        source = Path(compiled.source_path(module, str(root)))
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(f"# {module}\n")
        name = module.rsplit(".", 1)[1] + compiled.extension_suffix()
        (out / name).write_bytes(b"")
        modules[module] = {"file": name, "sha256": compiled.source_digest(source)}
    inlined = {}
    for module in compiled.INLINED_MODULES:
        source = Path(compiled.source_path(module, str(root)))
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("WIDTH: Final = 6\n")
        inlined[module] = compiled.source_digest(source)
    manifest = {
        "suffix": compiled.extension_suffix(),
        "modules": modules,
        "inlined": inlined,
        "runtime": {RUNTIME_LIBRARY: RUNTIME_LIBRARY + compiled.extension_suffix()},
    }
    (out / compiled.MANIFEST).write_text(json.dumps(manifest))
    return root, out


def files_of(out: Path) -> dict[str, str]:
    manifest = json.loads((out / compiled.MANIFEST).read_text())
    return {name: str(out / file) for name, file in manifest["runtime"].items()}


def test_a_build_that_matches_its_sources_is_used(build):
    root, out = build
    files, state = compiled.usable_build(str(out), str(root))
    assert state == "compiled"
    assert set(files) == {*BUILT_MODULES, RUNTIME_LIBRARY}
    assert files["passerelle.engine.http.lane"] == str(out / f"lane{compiled.extension_suffix()}")


def test_an_edited_source_sends_every_hot_module_back_to_source(build):
    root, out = build
    lane = Path(compiled.source_path("passerelle.engine.http.lane", str(root)))
    lane.write_text(lane.read_text() + "# edited\n")
    files, state = compiled.usable_build(str(out), str(root))
    assert files == {}
    assert state.startswith("passerelle.engine.http.lane changed since it was compiled")


def test_an_edited_c_source_sends_every_built_module_back_to_source(build):
    root, out = build
    module = "passerelle.engine.runtime.nonblocking_io"
    source = Path(compiled.source_path(module, str(root)))
    assert source.suffix == ".c"
    source.write_text(source.read_text() + "/* edited */\n")
    files, state = compiled.usable_build(str(out), str(root))
    assert files == {}
    assert state.startswith(f"{module} changed since it was compiled")


def test_an_edited_constant_the_build_carries_sends_it_back_to_source(build):
    root, out = build
    counters = Path(compiled.source_path("passerelle.engine.stats.counters", str(root)))
    counters.write_text("WIDTH: Final = 7\n")
    files, state = compiled.usable_build(str(out), str(root))
    assert files == {}
    assert state.startswith("passerelle.engine.stats.counters changed since it was compiled")


def test_a_build_for_another_interpreter_is_not_loaded(build):
    root, out = build
    manifest = json.loads((out / compiled.MANIFEST).read_text())
    manifest["suffix"] = ".cpython-312-x86_64-linux-gnu.so"
    (out / compiled.MANIFEST).write_text(json.dumps(manifest))
    files, state = compiled.usable_build(str(out), str(root))
    assert files == {}
    assert "cpython-312" in state


def test_a_build_made_by_another_interpreter_is_made_again(build):
    # Two CPython 3.11 builds share the file suffix: only the manifest tells them apart.
    root, out = build
    for file in files_of(out).values():
        Path(file).write_bytes(b"")
    manifest = json.loads((out / compiled.MANIFEST).read_text())
    (out / compiled.MANIFEST).write_text(json.dumps(manifest | compile_hot_path._made_by()))
    assert compile_hot_path._is_current(out, root)
    manifest |= compile_hot_path._made_by() | {"python": "3.11.7 (main) [GCC 12.2.0]"}
    (out / compiled.MANIFEST).write_text(json.dumps(manifest))
    assert not compile_hot_path._is_current(out, root)
    assert compiled.usable_build(str(out), str(root))[1] == "compiled"  # the engine could load it


def test_no_build_means_source(tmp_path):
    files, state = compiled.usable_build(str(tmp_path / "_compiled"), str(tmp_path))
    assert (files, state) == ({}, "not built (scripts/setup builds it)")


def test_the_finder_answers_only_for_the_hot_modules(build):
    root, out = build
    finder = compiled.CompiledFinder(str(out), str(root))
    assert finder.find_spec("passerelle.engine.runtime.worker") is None
    assert finder.files is None  # nothing checked for a module it does not compile
    spec = finder.find_spec("passerelle.engine.http.codec")
    assert spec is not None and spec.origin == str(out / f"codec{compiled.extension_suffix()}")
    c_module = finder.find_spec("passerelle.engine.runtime.nonblocking_io")
    assert c_module is not None
    assert c_module.origin == str(out / f"nonblocking_io{compiled.extension_suffix()}")
    assert finder.find_spec(RUNTIME_LIBRARY).origin.endswith(
        RUNTIME_LIBRARY + compiled.extension_suffix()
    )
