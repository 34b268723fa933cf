"""`passerelle config apply` with an engine running on the store: the command hands the file to
the engine, which validates, stores and makes it live before answering, so traffic has moved by
the time the command returns; refusals read exactly as when the command works alone."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from passerelle.engine.manage.location import control_path

from support.engine import EngineProcess, free_port, shared_engine
from support.fixtures import Servers

engine = shared_engine(workers=1)

# Runs the command in-process and then lists the modules it loaded, on stderr's last line.
RUN_AND_LIST_MODULES = """
import sys
from passerelle.cli import main
try:
    code = main(sys.argv[1:])
finally:
    sys.stdout.flush()
    print("\\nMODULES " + " ".join(sorted(sys.modules)), file=sys.stderr)
sys.exit(code)
"""


# The same, with the modules the command's way through an engine does without made unimportable
# (the editable install's import hook has loaded pathlib already, so listing would prove nothing).
RUN_WITHOUT_PATHLIB = (
    'import sys\nsys.modules["pathlib"] = sys.modules["contextlib"] = None\n' + RUN_AND_LIST_MODULES
)


class Result:
    def __init__(self, done: subprocess.CompletedProcess[str]) -> None:
        self.returncode = done.returncode
        self.stdout = done.stdout
        self.stderr, _, modules = done.stderr.rpartition("\nMODULES ")
        self.modules = modules.split()

    @property
    def shown(self) -> tuple[int, str, str]:
        return self.returncode, self.stdout, self.stderr


def config_apply(
    db: Path,
    *args: str,
    stdin: str | None = None,
    cwd: Path | None = None,
    script: str = RUN_AND_LIST_MODULES,
) -> Result:
    done = subprocess.run(
        [sys.executable, "-c", script, "config", "apply", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        cwd=cwd,
    )
    return Result(done)


def site(port: int, *servers: Any, name: str = "web") -> dict[str, Any]:
    return {
        "virtual_services": [
            {
                "name": name,
                "address": "127.0.0.1",
                "ports": [port],
                "health_check": {"type": "none"},
                "real_servers": [{"address": s.address, "port": s.port} for s in servers],
            }
        ]
    }


def served_by(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        return str(json.loads(response.read())["server"])


def write(folder: Path, name: str, data: dict[str, Any] | str) -> Path:
    path = folder / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_the_engine_applies_the_file_and_traffic_has_moved_when_the_command_returns(
    engine: EngineProcess, servers: Servers, tmp_path: Path
) -> None:
    first, second = servers.http("first"), servers.http("second")
    port = free_port()
    before = engine.store.latest_number()
    assert control_path(engine.db).is_socket()

    done = config_apply(engine.db, str(write(tmp_path, "a.json", site(port, first))))
    assert done.shown == (0, f"applied version {before + 1}\n", ""), done.stderr
    assert served_by(port) == "first"  # no waiting: the engine answered once it was live

    path = write(tmp_path, "b.json", site(port, second))
    done = config_apply(engine.db, str(path), "--author", "alice", "--comment", "move")
    assert done.shown == (0, f"applied version {before + 2}\n", ""), done.stderr
    assert served_by(port) == "second"
    version, _ = engine.store.current()
    assert version is not None and (version.author, version.comment) == ("alice", "move")

    # The command itself never built the model: the engine did the work.
    assert "passerelle.engine.manage.control" in done.modules
    assert not [
        m for m in done.modules if m == "pydantic" or m.startswith("passerelle.engine.model")
    ]

    again = config_apply(engine.db, str(path))
    assert again.shown == (0, f"unchanged, version {before + 2}\n", "")


def test_the_way_through_the_engine_needs_neither_pathlib_nor_contextlib(
    engine: EngineProcess, servers: Servers, tmp_path: Path
) -> None:
    port = free_port()
    before = engine.store.latest_number()
    path = write(tmp_path, "a.json", site(port, servers.http("first")))
    done = config_apply(engine.db, str(path), script=RUN_WITHOUT_PATHLIB)
    assert done.shown == (0, f"applied version {before + 1}\n", ""), done.stderr
    assert served_by(port) == "first"


def test_a_file_from_standard_input_goes_through_the_engine_too(
    engine: EngineProcess, servers: Servers
) -> None:
    backend = servers.http("stdin")
    port = free_port()
    before = engine.store.latest_number()
    done = config_apply(engine.db, "-", stdin=json.dumps(site(port, backend, name="piped")))
    assert done.shown == (0, f"applied version {before + 1}\n", ""), done.stderr
    assert "pydantic" not in done.modules
    assert served_by(port) == "stdin"


# file name -> (content, how its first error line starts)
BAD_FILES = {
    "invalid.yaml": (
        "virtual_services:\n  - name: web\n    address: 300.0.0.1\n    ports: [0]\n",
        "error: virtual_services[0].",
    ),
    "broken.yaml": (
        "virtual_services:\n  - name: web\n   address: 127.0.0.1\n",
        "error: broken.yaml: YAML error at line 3, column 4: ",
    ),
    "broken.json": ('{"virtual_services": [\n', "error: broken.json: JSON error at line 2"),
    "empty.yaml": ("\n", "error: empty.yaml: the file is empty"),
    "list.yaml": ("- web\n", "error: list.yaml: the top level must be a mapping"),
    "unknown.yaml": (
        "virtual_services: []\nvirtual_service: []\n",
        "error: virtual_service: Extra inputs are not permitted",
    ),
    "missing.yaml": (None, "error: missing.yaml: cannot read: No such file or directory"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_a_refused_file_reads_the_same_with_or_without_the_engine_and_changes_nothing(
    engine: EngineProcess, servers: Servers, tmp_path: Path, name: str
) -> None:
    backend = servers.http("kept")
    port = free_port()
    engine.apply(site(port, backend, name="kept"))
    before = engine.store.latest_number()
    content, first_line = BAD_FILES[name]
    if content is not None:
        write(tmp_path, name, content)

    # A relative name, as typed: messages name the file as the admin wrote it.
    with_engine = config_apply(engine.db, name, cwd=tmp_path)
    alone = config_apply(tmp_path / "alone" / "passerelle.db", name, cwd=tmp_path)

    assert with_engine.returncode == 1
    assert with_engine.shown == alone.shown
    assert with_engine.stdout == ""
    assert with_engine.stderr.startswith(first_line)
    # Only a file the command cannot read is refused by the command itself.
    assert ("pydantic" in with_engine.modules) == (content is None)
    if name == "invalid.yaml":
        assert sorted(with_engine.stderr.splitlines()) == [
            "error: virtual_services[0].address: '300.0.0.1' is not an IPv4 or IPv6 address",
            "error: virtual_services[0].ports[0]: Input should be greater than or equal to 1",
        ]
    assert engine.store.latest_number() == before
    assert served_by(port) == "kept"


def test_a_stale_expected_version_is_refused_by_the_engine_as_before(
    engine: EngineProcess, servers: Servers, tmp_path: Path
) -> None:
    backend = servers.http("stale")
    port = free_port()
    engine.apply(site(port, backend, name="stale"))
    latest = engine.store.latest_number()
    path = write(tmp_path, "next.json", site(port, backend, name="stale-next"))
    done = config_apply(engine.db, str(path), "--expect-version", str(latest - 1))
    assert done.shown == (
        2,
        "",
        f"passerelle config: not applied: expected version {latest - 1} "
        f"but the latest is {latest}\n",
    )
    assert "pydantic" not in done.modules
    assert engine.store.latest_number() == latest


def test_without_an_engine_the_command_applies_the_file_itself(
    servers: Servers, tmp_path: Path
) -> None:
    db = tmp_path / "store" / "passerelle.db"
    db.parent.mkdir()
    # What an engine that was killed leaves behind: a socket nobody listens on.
    left = socket.socket(socket.AF_UNIX)
    left.bind(str(control_path(db)))
    left.close()
    path = write(tmp_path, "site.json", site(free_port(), servers.http("alone")))

    done = config_apply(db, str(path))
    assert done.shown == (0, "applied version 1\n", "")
    assert "pydantic" in done.modules  # it validated the file itself

    refused = config_apply(db, str(write(tmp_path, "bad.yaml", BAD_FILES["invalid.yaml"][0])))
    assert refused.returncode == 1
    assert "error: virtual_services[0].ports[0]: " in refused.stderr
