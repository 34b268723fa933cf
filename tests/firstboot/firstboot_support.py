"""Helpers for the first-boot and console tests: a fake appliance root (sysfs, DMI) in a
temporary directory, and a console driven through tmux as a person at an 80x25 screen would."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from passerelle.firstboot.paths import Paths
from passerelle.firstboot.system import RecordingRunner, System, recording_system

REPO = Path(__file__).resolve().parents[2]


class ApplianceRoot:
    """A directory that looks, to the first-boot code, like a freshly booted VM."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.paths = Paths.at(path)
        self.add_interface("ens192", "00:50:56:aa:bb:cc", ifindex=2)
        (path / "etc/ssh").mkdir(parents=True)

    def add_interface(self, name: str, mac: str, ifindex: int, *, physical: bool = True) -> None:
        entry = self.paths.net_class / name
        entry.mkdir(parents=True)
        (entry / "type").write_text("1\n")
        (entry / "address").write_text(mac + "\n")
        (entry / "ifindex").write_text(f"{ifindex}\n")
        if physical:
            (entry / "device").mkdir()

    def set_dmi(self, vendor: str, product_uuid: str | None = None) -> None:
        self.paths.dmi_dir.mkdir(parents=True, exist_ok=True)
        (self.paths.dmi_dir / "sys_vendor").write_text(vendor + "\n")
        if product_uuid:
            (self.paths.dmi_dir / "product_uuid").write_text(product_uuid + "\n")

    def set_fw_cfg(self, metadata: dict[str, object]) -> None:
        self.paths.fw_cfg_metadata.parent.mkdir(parents=True, exist_ok=True)
        self.paths.fw_cfg_metadata.write_text(json.dumps(metadata))

    def system(self) -> System:
        return recording_system(self.paths)

    def recorded(self) -> list[list[str]]:
        return RecordingRunner(self.paths).recorded()


@pytest.fixture
def appliance(tmp_path: Path) -> ApplianceRoot:
    root = tmp_path / "root"
    root.mkdir()
    return ApplianceRoot(root)


def run_passerelle(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "passerelle", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )


class Console:
    """``passerelle console`` in a detached 80x25 tmux session with TERM=linux."""

    def __init__(self, root: Path, refresh: float = 60.0) -> None:
        # a private server socket: never the user's tmux, never another test's
        self.dir = Path(tempfile.mkdtemp(prefix="pslcon-"))
        self.socket = str(self.dir / "tmux.sock")
        conf = self.dir / "tmux.conf"
        conf.write_text("set -g remain-on-exit on\nset -g history-limit 2000\n")
        command = (
            f"env TERM=linux {shlex.quote(sys.executable)} -m passerelle console "
            f"--root {shlex.quote(str(root))} --refresh {refresh}; "
            # tmux does not always learn a dead pane's exit status; the shell tells it on screen
            f'echo "console exited with status $?"'
        )
        self._tmux(
            "-f", str(conf), "new-session", "-d", "-x", "80", "-y", "25", "-c", str(REPO), command
        )

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-S", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p")

    def wait_for(self, text: str, timeout: float = 10.0) -> str:
        return self.wait_until(lambda screen: text in screen, f"{text!r}", timeout)

    def wait_until(self, ready: Callable[[str], bool], what: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if ready(screen):
                return screen
            if time.monotonic() > deadline:
                pane = self._tmux(
                    "display-message",
                    "-p",
                    "dead=#{pane_dead} status=#{pane_dead_status} "
                    "signal=#{pane_dead_signal} pid=#{pane_pid}",
                )
                raise AssertionError(f"{what} never shown ({pane.strip()}); the screen:\n{screen}")
            time.sleep(0.05)

    def prompt_line(self) -> str:
        """The last non-blank line: where the cursor waits."""
        lines = [line for line in self.screen().splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def answer(self, prompt: str, text: str) -> None:
        """Wait until the cursor's line ends with ``prompt``, then type ``text`` and Enter."""
        wanted = prompt.rstrip()
        self.wait_until(
            lambda _: self.prompt_line().rstrip().endswith(wanted), f"prompt {prompt!r}"
        )
        if text:
            self._tmux("send-keys", "-l", text)
        self._tmux("send-keys", "Enter")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", *keys)

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True, check=False)
        for entry in self.dir.iterdir():
            entry.unlink()
        self.dir.rmdir()


@pytest.fixture
def console_at() -> Iterator[Callable[..., Console]]:
    started: list[Console] = []

    def start(root: Path, refresh: float = 60.0) -> Console:
        console = Console(root, refresh)
        started.append(console)
        return console

    yield start
    for console in started:
        console.close()
