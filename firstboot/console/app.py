"""The console's main loop: the main screen, redrawn on every return and on a timer (licence
days and HA state change, and kernel messages can scribble over the screen)."""

from __future__ import annotations

import logging
import signal
import sys

from passerelle.firstboot.console.screen import MAIN_PROMPT, main_screen
from passerelle.firstboot.console.terminal import Terminal
from passerelle.firstboot.console.wizard import FactoryResetDone, Wizard
from passerelle.firstboot.facts import gather_facts
from passerelle.firstboot.paths import Paths
from passerelle.firstboot.system import System

log = logging.getLogger("passerelle.console")
DEFAULT_REFRESH = 30.0


def run_console(
    paths: Paths, system: System, term: Terminal | None = None, refresh: float = DEFAULT_REFRESH
) -> int:
    term = term or Terminal()
    if sys.stdin.isatty():
        # nobody may suspend or core-dump the console into an unusable tty
        signal.signal(signal.SIGTSTP, signal.SIG_IGN)
        signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    wizard = Wizard(term, paths, system)
    actions = {
        "1": wizard.network,
        "2": wizard.hostname,
        "3": wizard.password,
        "4": wizard.factory_reset,
    }
    message = ""
    while True:
        facts = gather_facts(paths)
        term.clear()
        for line in main_screen(facts, message):
            term.line(line)
        message = ""
        try:
            choice = term.read_line(MAIN_PROMPT, timeout=refresh)
        except KeyboardInterrupt:
            continue
        except EOFError:
            return 0  # on tty1 systemd starts the console again
        if choice is None:
            continue
        action = actions.get(choice.strip().lower())
        if action is None:
            if choice.strip() and choice.strip().lower() != "r":
                message = f"'{choice.strip()[:20]}' is not a choice."
            continue
        try:
            message = action(facts)
        except KeyboardInterrupt:
            message = "Cancelled; nothing changed."
        except EOFError:
            return 0
        except FactoryResetDone:
            return 0
        except Exception as exc:  # the console must stay up whatever breaks underneath
            log.exception("console action failed")
            message = f"Error: {exc}"
