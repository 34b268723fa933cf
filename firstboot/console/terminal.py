"""Line-oriented terminal I/O for a bare Linux console.

Only the "clear screen" escape is used (every terminal, including TERM=linux and a serial
line, understands it); input is read a line at a time, with echo off for passwords.
"""

from __future__ import annotations

import os
import select
import sys
import termios
from typing import TextIO

CLEAR = "\x1b[H\x1b[2J"


class Terminal:
    def __init__(self, stdin_fd: int | None = None, stdout: TextIO | None = None) -> None:
        self.fd = sys.stdin.fileno() if stdin_fd is None else stdin_fd
        self.out = stdout or sys.stdout
        self._pending = b""

    def clear(self) -> None:
        self.write(CLEAR)

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def line(self, text: str = "") -> None:
        self.write(text + "\n")

    def read_line(self, prompt: str, timeout: float | None = None) -> str | None:
        """A line without its ending; None when ``timeout`` passes first. EOFError at end."""
        self.write(prompt)
        while b"\n" not in self._pending:
            if timeout is not None and not select.select([self.fd], [], [], timeout)[0]:
                return None
            chunk = os.read(self.fd, 1024)
            if not chunk:
                raise EOFError
            self._pending += chunk
        raw, _, self._pending = self._pending.partition(b"\n")
        return raw.decode("utf-8", errors="replace").rstrip("\r")

    def read_secret(self, prompt: str) -> str:
        """A line typed without echo (on a terminal)."""
        try:
            saved = termios.tcgetattr(self.fd)
        except termios.error:
            return self.read_line(prompt) or ""
        quiet = list(saved)
        quiet[3] &= ~termios.ECHO
        termios.tcsetattr(self.fd, termios.TCSAFLUSH, quiet)
        try:
            return self.read_line(prompt) or ""
        finally:
            termios.tcsetattr(self.fd, termios.TCSAFLUSH, saved)
            self.write("\n")
