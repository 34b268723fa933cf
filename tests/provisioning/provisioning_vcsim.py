"""govmomi's vCenter simulator for the tests: built once from Debian's Go packages (GOPATH
mode) and cached by the hash of its Go source and the toolchain, then run per test module."""

from __future__ import annotations

import fcntl
import hashlib
import os
import select
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

SOURCE = Path(__file__).parent / "vcsim" / "main.go"
GOCODE = Path("/usr/share/gocode")
GOVMOMI = GOCODE / "src/github.com/vmware/govmomi/simulator"
APT_PACKAGES = "golang-go golang-github-vmware-govmomi-dev"


class VcsimUnavailable(Exception):
    pass


def _cache_root() -> Path:
    base = os.environ.get("PASSERELLE_TEST_CACHE") or os.path.expanduser("~/.cache/passerelle")
    return Path(base) / "vcsim"


def _toolchain_id(go: str) -> str:
    version = subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout
    package = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "golang-github-vmware-govmomi-dev"],
        capture_output=True,
        text=True,
    ).stdout
    return f"{version.strip()}|govmomi {package.strip()}"


def vcsim_binary() -> Path:
    """The built simulator; builds it (~15-60 s) only when the source or toolchain changed."""
    go = shutil.which("go")
    if go is None or not GOVMOMI.is_dir():
        raise VcsimUnavailable(f"needs the Debian packages {APT_PACKAGES}")
    digest = hashlib.sha256(SOURCE.read_bytes() + _toolchain_id(go).encode()).hexdigest()[:16]
    directory = _cache_root() / digest
    binary = directory / "vcsim"
    if binary.is_file():
        return binary
    directory.mkdir(parents=True, exist_ok=True)
    # Concurrent test runs build once: the second waits on the lock, then finds the binary.
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.is_file():
            return binary
        with tempfile.TemporaryDirectory(prefix="vcsim-gopath-") as gopath:
            env = dict(
                os.environ,
                GO111MODULE="off",
                GOPATH=f"{gopath}:{GOCODE}",
                GOCACHE=str(_cache_root() / "gocache"),
                GOFLAGS="",
            )
            partial = directory / "vcsim.partial"
            result = subprocess.run(
                [go, "build", "-o", str(partial), str(SOURCE)],
                env=env,
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise VcsimUnavailable(f"go build failed:\n{result.stderr[-2000:]}")
            partial.rename(binary)
    return binary


class Vcsim:
    """One simulator process on 127.0.0.1 with a fixed login."""

    def __init__(self, user: str = "administrator", password: str = "vcsim-Secret1") -> None:
        self.user = user
        self.password = password
        self.workdir = tempfile.TemporaryDirectory(prefix="vcsim-")
        binary = vcsim_binary()
        self.process = subprocess.Popen(
            [str(binary), "-listen", "127.0.0.1:0", "-user", user, "-password", password],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=self.workdir.name,
            env=dict(os.environ, TMPDIR=self.workdir.name),
        )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 30)
        line = self.process.stdout.readline().decode().strip() if ready else ""
        if not line.startswith("https://"):
            self.stop()
            raise VcsimUnavailable(f"vcsim did not start (said {line!r})")
        url = urlsplit(line)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 443

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.workdir.cleanup()
