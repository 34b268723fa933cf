"""The health monitor against real servers on loopback: announcements, reloads, removal."""

from __future__ import annotations

import socket as stdlib_socket
from collections.abc import Callable, Iterator

import gevent
import pytest
from gevent import socket
from gevent.event import Event
from gevent.server import StreamServer

from passerelle.engine.health.monitor import HealthMonitor, Target, TargetStatus
from passerelle.engine.model.config import HealthCheck

FAST = {"type": "http", "interval": 0.2, "timeout": 0.1, "retries": 2, "rise": 2}


def fast_check(**fields: object) -> HealthCheck:
    return HealthCheck(**{**FAST, **fields})


class RealServer:
    """An HTTP real server that answers 200, or stops answering while `answering` is False."""

    def __init__(self) -> None:
        self.answering = True
        self.requests: list[bytes] = []
        self._closed = Event()
        self._server = StreamServer(("127.0.0.1", 0), self._serve)
        self._server.start()
        self.port: int = self._server.server_port

    def _serve(self, sock: socket.socket, _peer: object) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                return
            head += chunk
        self.requests.append(head.split(b"\r\n", 1)[0])
        if self.answering:
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        else:
            self._closed.wait()

    def close(self) -> None:
        self._closed.set()
        self._server.stop(timeout=1)


@pytest.fixture
def server() -> Iterator[RealServer]:
    s = RealServer()
    yield s
    s.close()


Change = tuple[str, bool, str]  # (target_id, up, detail) as given to on_change


class Recorder:
    """on_change listener that also snapshots the monitor's status at each announcement."""

    def __init__(self) -> None:
        self.events: list[Change] = []
        self.snapshots: list[TargetStatus] = []
        self.monitor = HealthMonitor(self)

    def __call__(self, target_id: str, up: bool, detail: str) -> None:
        self.events.append((target_id, up, detail))
        self.snapshots.append(self.monitor.status()[target_id])

    def wait_events(self, count: int, within: float = 2.0) -> list[Change]:
        wait_until(lambda: len(self.events) >= count, within)
        return self.events


def wait_until(condition: Callable[[], bool], within: float = 2.0) -> None:
    with gevent.Timeout(within, AssertionError(f"condition not met within {within} s")):
        while not condition():
            gevent.sleep(0.01)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.monitor.stop()


@pytest.fixture
def refused_port() -> Iterator[int]:
    sock = stdlib_socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    yield sock.getsockname()[1]
    sock.close()


def test_goes_down_after_retries_and_up_after_rise(server: RealServer, recorder: Recorder) -> None:
    tid = "web|127.0.0.1:80"
    recorder.monitor.update({tid: Target("127.0.0.1", server.port, fast_check())})
    assert recorder.monitor.is_up(tid) is None

    assert recorder.wait_events(1) == [(tid, True, "HTTP 200")]
    assert recorder.monitor.is_up(tid) is True

    server.answering = False
    # Down within about interval x retries, plus slack.
    events = recorder.wait_events(2, within=1.5)
    assert events[1] == (tid, False, "timeout after 0.1 s")
    assert recorder.monitor.is_up(tid) is False
    down = recorder.snapshots[1]
    assert (down.up, down.failures, down.checks - down.failures) == (False, 2, 1)

    server.answering = True
    events = recorder.wait_events(3, within=1.5)
    assert events[2] == (tid, True, "HTTP 200")
    assert recorder.monitor.is_up(tid) is True
    back = recorder.snapshots[2]
    successes_since_down = (back.checks - back.failures) - (down.checks - down.failures)
    assert successes_since_down == 2  # rise
    assert back.since > down.since
    assert len(recorder.events) == 3


def test_a_dead_server_is_down_at_its_first_result(refused_port: int, recorder: Recorder) -> None:
    tid = "web|127.0.0.1:1"
    recorder.monitor.update({tid: Target("127.0.0.1", refused_port, fast_check(retries=5))})
    assert recorder.wait_events(1) == [(tid, False, "connection refused")]
    assert recorder.snapshots[0].checks == 1


def test_unchanged_target_keeps_state_and_is_not_announced_again(
    server: RealServer, recorder: Recorder
) -> None:
    tid = "web|127.0.0.1:80"
    recorder.monitor.update({tid: Target("127.0.0.1", server.port, fast_check())})
    recorder.wait_events(1)
    before = recorder.monitor.status()[tid]

    # A reload builds new, equal objects.
    recorder.monitor.update({tid: Target("127.0.0.1", server.port, fast_check())})
    assert recorder.monitor.is_up(tid) is True
    wait_until(lambda: recorder.monitor.status()[tid].checks >= before.checks + 2)

    after = recorder.monitor.status()[tid]
    assert after.since == before.since
    assert after.up is True
    assert recorder.events == [(tid, True, "HTTP 200")]


def test_changed_target_starts_over(server: RealServer, recorder: Recorder) -> None:
    tid = "web|127.0.0.1:80"
    recorder.monitor.update({tid: Target("127.0.0.1", server.port, fast_check())})
    recorder.wait_events(1)

    recorder.monitor.update({tid: Target("127.0.0.1", server.port, fast_check(path="/v2"))})
    assert recorder.monitor.is_up(tid) is None
    assert recorder.monitor.status()[tid].checks == 0
    assert recorder.wait_events(2) == [(tid, True, "HTTP 200")] * 2
    assert server.requests[-1] == b"GET /v2 HTTP/1.1"
    assert b"GET / HTTP/1.1" in server.requests


def test_removed_target_stops_probing(server: RealServer, recorder: Recorder) -> None:
    kept, removed = "a|127.0.0.1:80", "b|127.0.0.1:80"
    target = Target("127.0.0.1", server.port, fast_check(path="/removed"))
    recorder.monitor.update({kept: Target("127.0.0.1", server.port, fast_check()), removed: target})
    recorder.wait_events(2)

    recorder.monitor.update({kept: Target("127.0.0.1", server.port, fast_check())})
    assert set(recorder.monitor.status()) == {kept}
    assert recorder.monitor.is_up(removed) is None
    gevent.sleep(0.05)
    seen = server.requests.count(b"GET /removed HTTP/1.1")
    kept_seen = len(server.requests) - seen
    gevent.sleep(0.7)  # more than three intervals
    assert server.requests.count(b"GET /removed HTTP/1.1") == seen
    assert len(server.requests) - seen > kept_seen  # the other target went on


def test_stop_ends_all_probing(server: RealServer, recorder: Recorder) -> None:
    recorder.monitor.update(
        {f"pool{i}|127.0.0.1:80": Target("127.0.0.1", server.port, fast_check()) for i in range(3)}
    )
    recorder.wait_events(3)
    recorder.monitor.stop()
    assert recorder.monitor.status() == {}
    gevent.sleep(0.05)
    seen = len(server.requests)
    gevent.sleep(0.5)
    assert len(server.requests) == seen


def test_no_health_check_is_up_once_without_probing(refused_port: int, recorder: Recorder) -> None:
    tid = "web|127.0.0.1:80"
    recorder.monitor.update({tid: Target("127.0.0.1", refused_port, fast_check(type="none"))})
    assert recorder.wait_events(1) == [(tid, True, "no health check")]
    gevent.sleep(0.5)
    assert recorder.events == [(tid, True, "no health check")]
    status = recorder.monitor.status()[tid]
    assert (status.up, status.checks) == (True, 0)


def test_targets_are_probed_concurrently(server: RealServer, recorder: Recorder) -> None:
    silent = RealServer()
    silent.answering = False
    try:
        slow = fast_check(interval=3.0, timeout=2.0)
        recorder.monitor.update(
            {
                "slow|127.0.0.1:80": Target("127.0.0.1", silent.port, slow),
                "fast|127.0.0.1:80": Target("127.0.0.1", server.port, fast_check()),
            }
        )
        # The fast server's answer is not held up behind the silent one's timeout.
        assert recorder.wait_events(1, within=1.5) == [("fast|127.0.0.1:80", True, "HTTP 200")]
        assert recorder.monitor.is_up("slow|127.0.0.1:80") is None
        wait_until(lambda: len(silent.requests) == 1)  # it was being probed all along
    finally:
        recorder.monitor.stop()
        silent.close()


def test_same_server_in_two_pools_is_tracked_per_target(
    server: RealServer, recorder: Recorder
) -> None:
    targets = {
        "web|127.0.0.1:80": Target("127.0.0.1", server.port, fast_check()),
        "api|127.0.0.1:80": Target("127.0.0.1", server.port, fast_check()),
    }
    recorder.monitor.update(targets)
    assert sorted(recorder.wait_events(2)) == sorted((t, True, "HTTP 200") for t in targets)


def test_a_failing_listener_does_not_stop_the_checks(server: RealServer) -> None:
    events: list[Change] = []

    def on_change(target_id: str, up: bool, detail: str) -> None:
        events.append((target_id, up, detail))
        if len(events) == 1:
            raise RuntimeError("listener bug")

    monitor = HealthMonitor(on_change)
    try:
        monitor.update({"t": Target("127.0.0.1", server.port, fast_check())})
        wait_until(lambda: len(events) == 1)
        server.answering = False
        wait_until(lambda: len(events) == 2)
        assert events == [("t", True, "HTTP 200"), ("t", False, "timeout after 0.1 s")]
    finally:
        monitor.stop()


def test_update_from_inside_the_listener(server: RealServer) -> None:
    # The supervisor may reconfigure as a reaction to a change, in the announcing greenlet.
    events: list[Change] = []
    monitor = HealthMonitor(lambda *event: (events.append(event), monitor.update({})))
    try:
        monitor.update({"t": Target("127.0.0.1", server.port, fast_check())})
        wait_until(lambda: len(events) == 1)
        assert monitor.status() == {}
        seen = len(server.requests)
        gevent.sleep(0.5)
        assert len(server.requests) == seen
        assert events == [("t", True, "HTTP 200")]
    finally:
        monitor.stop()
