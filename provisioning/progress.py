"""How a deployment tells the user what it is doing: rich progress on stderr, or a record."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)


class Reporter(Protocol):
    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def transfer(
        self, description: str, total: int
    ) -> AbstractContextManager[Callable[[int], None]]:
        """Gives advance(nbytes) for a byte transfer of known size."""
        ...

    def waiting(self, description: str) -> AbstractContextManager[Callable[[str], None]]:
        """Gives status(text) for a wait of unknown length."""
        ...


class ConsoleReporter:
    """Progress bars and spinners on stderr, so stdout keeps only the result."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)

    def info(self, message: str) -> None:
        self.console.print(message, markup=False)

    def warn(self, message: str) -> None:
        self.console.print(f"warning: {message}", style="yellow", markup=False)

    @contextmanager
    def transfer(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.console, transient=False) as progress:
            task = progress.add_task(description, total=total)
            yield lambda n: progress.advance(task, n)

    @contextmanager
    def waiting(self, description: str) -> Iterator[Callable[[str], None]]:
        if not self.console.is_terminal:  # a log file gets one line per wait, not spinner frames
            self.console.print(f"{description} ...", markup=False)
            yield lambda status: None
            self.console.print(f"{description}: done", markup=False)
            return
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.fields[status]}", style="dim"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.console, transient=True) as progress:
            task = progress.add_task(description, total=None, status="")
            yield lambda status: progress.update(task, status=status)
        self.console.print(f"{description}: done", markup=False)


class RecordingReporter:
    """Keeps every line in memory; for callers that show progress their own way."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.transferred: dict[str, int] = {}

    def info(self, message: str) -> None:
        self.lines.append(message)

    def warn(self, message: str) -> None:
        self.lines.append(f"warning: {message}")

    @contextmanager
    def transfer(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        self.transferred[description] = 0

        def advance(n: int) -> None:
            self.transferred[description] += n

        yield advance
        self.lines.append(f"{description}: {self.transferred[description]}/{total} bytes")

    @contextmanager
    def waiting(self, description: str) -> Iterator[Callable[[str], None]]:
        started = time.monotonic()
        yield lambda status: None
        self.lines.append(f"{description}: done in {time.monotonic() - started:.1f}s")
