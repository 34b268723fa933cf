"""Progress of a long build: numbered steps with timings; a failure names its step and why."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console


class StepFailed(Exception):
    """A build or boot-test step that did not complete."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"step '{step}' failed: {reason}")
        self.step = step
        self.reason = reason


class CommandFailed(Exception):
    def __init__(self, command: Sequence[str], status: int, tail: str) -> None:
        super().__init__(f"{command[0]} exited with status {status}:\n{tail}".rstrip())


def run(command: Sequence[str | Path], log: Path | None = None, **kwargs: object) -> None:
    """Runs a tool, its output going to ``log``; on failure the error carries the output's end."""
    argv = [str(part) for part in command]
    if log is None:
        result = subprocess.run(argv, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
        output = (result.stdout or "") + (result.stderr or "")
    else:
        with log.open("a") as out:
            out.write(f"$ {' '.join(argv)}\n")
            out.flush()
            result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, **kwargs)  # type: ignore[call-overload]
        output = log.read_text(errors="replace")
    if result.returncode != 0:
        tail = "\n".join(output.splitlines()[-15:])
        raise CommandFailed(argv, result.returncode, tail)


class Steps:
    """Prints ``[i/n] title`` when a step starts, and its outcome and duration when it ends."""

    def __init__(self, total: int, console: Console | None = None) -> None:
        self.total = total
        self.console = console or Console(stderr=True, highlight=False)
        self.timings: dict[str, float] = {}
        self._index = 0

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self._index += 1
        label = f"[{self._index}/{self.total}] {title}"
        started = time.monotonic()
        try:
            if self.console.is_terminal:
                with self.console.status(label):
                    yield
            else:
                self.console.print(f"{label} ...")
                yield
        except StepFailed:
            raise
        except Exception as exc:
            self.console.print(f"[bold red]{label}: failed[/] ({time.monotonic() - started:.1f} s)")
            raise StepFailed(title, str(exc) or type(exc).__name__) from exc
        elapsed = time.monotonic() - started
        self.timings[title] = elapsed
        self.console.print(f"{label}: [green]done[/] in {elapsed:.1f} s")

    def note(self, text: str) -> None:
        self.console.print(f"      {text}")
