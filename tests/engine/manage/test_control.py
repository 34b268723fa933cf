"""The engine's control socket over real Unix sockets: who may use it, what it answers, and that
a file applied through it gives what applying it in the command gives."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest

from passerelle.engine.manage import control, control_server
from passerelle.engine.manage.applying import apply_action, parse_config_bytes
from passerelle.engine.manage.control_server import ControlServer
from passerelle.engine.manage.daemon import start_control
from passerelle.engine.manage.files import ConfigFileError, load_config_file
from passerelle.engine.manage.follow import StoreFollower
from passerelle.engine.manage.location import control_path
from passerelle.engine.manage.store import ConfigStore
from passerelle.engine.model.config import Config

SERVICE = {
    "name": "web",
    "address": "127.0.0.1",
    "ports": [8080],
    "real_servers": [{"address": "127.0.0.1", "port": 9001}],
}
VALID = json.dumps({"virtual_services": [SERVICE]}).encode()


@pytest.fixture
def folder() -> Iterator[Path]:
    # Short, and open to other users: a Unix socket path has a length limit, and one test
    # connects as another user.
    path = Path(tempfile.mkdtemp(prefix="ctl", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Engine:
    """The engine's side, in this process: the store, the apply action and its server."""

    def __init__(self, folder: Path) -> None:
        self.store = ConfigStore(folder / "passerelle.db")
        self.made_live: list[int] = []
        self.server = ControlServer(
            control_path(self.store.path),
            {"apply": apply_action(self.store, self.made_live.append)},
        )
        self.server.start()

    def apply(self, body: bytes, name: str = "site.json", **fields: Any) -> control.Outcome:
        header = {"name": name, "author": "alice", "comment": "", "expected": None, **fields}
        return _in_thread(
            lambda: control.ask(control.connect(self.server.path), "apply", header, body)
        )

    def close(self) -> None:
        self.server.stop()
        self.store.close()


def _in_thread(call: Callable[[], control.Outcome]) -> control.Outcome:
    # The command's side blocks its OS thread (it serves a short-lived command, not gevent):
    # here it must leave this process's hub free to serve the engine's side.
    return gevent.get_hub().threadpool.apply(call)


@pytest.fixture
def engine(folder: Path) -> Iterator[Engine]:
    running = Engine(folder)
    yield running
    running.close()


def test_the_socket_is_the_owners_only_and_goes_away_with_the_engine(engine: Engine) -> None:
    path = engine.server.path
    assert path == engine.store.path.with_name("passerelle.db.sock")
    mode = path.lstat().st_mode
    assert (mode & 0o777, path.is_socket()) == (0o600, True)
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".")) == []
    engine.server.stop()
    assert not path.exists()
    with pytest.raises(control.NoEngine):
        control.connect(path)


def test_a_valid_file_is_stored_and_made_live_before_the_answer(engine: Engine) -> None:
    outcome = engine.apply(VALID, comment="first")
    assert outcome == control.Outcome(stdout="applied version 1\n")
    assert engine.made_live == [1]
    version, config = engine.store.current()
    assert version is not None and (version.author, version.comment) == ("alice", "first")
    assert config.service("web").real_servers[0].port == 9001

    assert engine.apply(VALID) == control.Outcome(stdout="unchanged, version 1\n")
    assert engine.made_live == [1]  # nothing new to make live


def test_an_invalid_file_is_refused_whole_naming_the_field(engine: Engine) -> None:
    engine.apply(VALID)
    bad = VALID.replace(b"9001", b"70000").replace(b'"127.0.0.1", "ports"', b'"1.2.3", "ports"')
    outcome = engine.apply(bad)
    assert outcome.status == 1 and outcome.stdout == "" and outcome.failure is None
    assert sorted(outcome.stderr.splitlines()) == [
        "error: virtual_services[0].address: '1.2.3' is not an IPv4 or IPv6 address",
        "error: virtual_services[0].real_servers[0].port: "
        "Input should be less than or equal to 65535",
    ]
    assert engine.store.latest_number() == 1
    assert engine.made_live == [1]


def test_a_stale_expected_version_is_a_command_error(engine: Engine) -> None:
    engine.apply(VALID)
    outcome = engine.apply(VALID.replace(b"9001", b"9002"), expected=0)
    assert outcome == control.Outcome(
        status=2, failure="not applied: expected version 0 but the latest is 1"
    )
    assert engine.store.latest_number() == 1


@pytest.mark.parametrize(
    ("header", "failure"),
    [
        ({"protocol": 99, "action": "apply"}, "this engine speaks control protocol 1"),
        ({"protocol": 1, "action": "reboot"}, "the engine has no action 'reboot'"),
        ({"protocol": 1, "action": "apply", "name": 3}, "the engine could not read the request"),
    ],
)
def test_requests_it_cannot_serve_are_refused_with_a_reason(
    engine: Engine, header: dict[str, Any], failure: str
) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(engine.server.path))
        sock.sendall(json.dumps(header).encode() + b"\n" + VALID)
        sock.shutdown(socket.SHUT_WR)
        answer = control.Outcome.from_json(sock.makefile("rb").read())
    assert answer.status == 2
    assert answer.failure is not None and answer.failure.startswith(failure)
    assert engine.store.latest_number() == 0


def test_a_request_past_the_limit_is_refused_unread(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control_server, "MAX_REQUEST", 1000)
    outcome = engine.apply(b" " * 2000 + VALID)
    assert outcome == control.Outcome(status=2, failure="request larger than 1000 bytes")
    assert engine.store.latest_number() == 0


def test_a_socket_left_by_a_dead_engine_means_no_engine_and_is_replaced(folder: Path) -> None:
    path = control_path(folder / "passerelle.db")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # bound, never listening: what a killed engine leaves
    with pytest.raises(control.NoEngine):
        control.connect(path)

    engine = Engine(folder)
    try:
        assert engine.apply(VALID).stdout == "applied version 1\n"
    finally:
        engine.close()


def test_stopping_leaves_a_socket_that_another_engine_took_over(folder: Path) -> None:
    first, second = Engine(folder), Engine(folder)
    try:
        first.server.stop()  # the socket is the second engine's now
        assert second.apply(VALID).stdout == "applied version 1\n"
    finally:
        second.close()
        first.store.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_another_user_is_refused_even_when_the_mode_lets_it_connect(engine: Engine) -> None:
    engine.server.path.chmod(0o666)  # only the uid check stands in the way now
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit status only
        code = 3
        try:
            os.setuid(65534)  # nobody
            connection = control.connect(engine.server.path)
            try:
                control.ask(connection, "apply", {"name": "x"}, VALID, timeout=5)
                code = 1  # answered a stranger
            except control.NoAnswer:
                code = 0
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert engine.store.latest_number() == 0


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("site.json", VALID),
        ("site.yaml", b"\xef\xbb\xbfvirtual_services: []\nx_forwarded_for: off\n"),
        ("site.conf", VALID),  # no known suffix: '{' means JSON
        ("site.conf", b"virtual_services: []\n"),
        ("<stdin>", b"virtual_services: [}\n"),
        ("site.json", b'{"virtual_services": [],\n "virtual_services": []}'),
        ("site.json", b'{"virtual_services": [\n'),
        ("site.yaml", b"virtual_services:\n  - name: web\n   address: 127.0.0.1\n"),
        ("site.yaml", b"a: 1\na: 2\n"),
        ("site.yaml", b"  \n"),
        ("site.yaml", b"virtual_services: \xff\n"),
        ("site.yaml", b"- one\n- two\n"),
    ],
)
def test_bytes_parse_as_the_same_file_would(
    folder: Path, monkeypatch: pytest.MonkeyPatch, name: str, raw: bytes
) -> None:
    monkeypatch.chdir(folder)
    if name == "<stdin>":
        source = "-"
        monkeypatch.setattr(sys, "stdin", _Stdin(raw))
    else:
        source = name
        Path(name).write_bytes(raw)
    try:
        expected: Any = load_config_file(source)
    except ConfigFileError as exc:
        expected = (type(exc), str(exc), exc.line)
    try:
        got: Any = parse_config_bytes(name, raw)
    except ConfigFileError as exc:
        got = (type(exc), str(exc), exc.line)
    assert got == expected


class _Stdin:
    def __init__(self, raw: bytes) -> None:
        self.buffer = io.BytesIO(raw)


def test_the_engine_makes_what_it_stored_live_before_it_answers(folder: Path) -> None:
    store = ConfigStore(folder / "passerelle.db")
    live: list[int] = []

    def supervisor_apply(config: Config, number: int) -> dict[str, Any]:
        live.append(number)
        return {"version": number, "errors": []}

    # Not running its follow loop: only the control socket's own sync can make it live.
    follower = StoreFollower(store, supervisor_apply, interval=3600)
    server = start_control(store, follower)
    assert server is not None
    try:
        header = {"name": "site.json", "author": "bob", "comment": "", "expected": None}
        outcome = _in_thread(
            lambda: control.ask(control.connect(server.path), "apply", header, VALID)
        )
        assert (outcome.stdout, live) == ("applied version 1\n", [1])
    finally:
        server.stop()
        store.close()


def test_an_engine_whose_socket_cannot_be_made_runs_without_it(folder: Path) -> None:
    store = ConfigStore(folder / "passerelle.db")
    control_path(store.path).mkdir()  # something that is not a socket is in the way
    try:
        assert start_control(store, StoreFollower(store, lambda c, n: {})) is None
    finally:
        store.close()
