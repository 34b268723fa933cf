"""Running Packer on packer/*.pkr.hcl: the sealing boot of the assembled disk."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from passerelle.image.steps import run
from passerelle.image.variables import PACKER_DIR, packer_arguments, packer_variable_names

SEAL_RESULT = re.compile(r"PASSERELLE-SEAL: (OK|FAILED)(.*)")


def packer_env() -> dict[str, str]:
    env = dict(os.environ)
    env["CHECKPOINT_DISABLE"] = "1"  # no version check call-home
    env.setdefault("PACKER_LOG", "0")
    return env


def validate(resolved: Mapping[str, Any], log: Path) -> None:
    arguments = packer_arguments(resolved, packer_variable_names())
    work = Path(resolved["output_directory"]).parent  # packer_cache/ lands in the working dir
    run(["packer", "validate", *arguments, PACKER_DIR], log=log, env=packer_env(), cwd=work)


def seal(resolved: Mapping[str, Any], log: Path) -> Path:
    """Boots the disk once under Packer; returns the sealed raw disk it wrote."""
    if shutil.which("packer") is None:
        raise FileNotFoundError("packer not found: apt-get install packer")
    arguments = packer_arguments(resolved, packer_variable_names())
    work = Path(resolved["output_directory"]).parent
    command = ["packer", "build", "-color=false", *arguments, PACKER_DIR]
    run(command, log=log, env=packer_env(), cwd=work)
    output = Path(resolved["output_directory"]) / f"passerelle-{resolved['version']}.raw"
    serial = Path(f"{resolved['output_directory']}.serial.log")
    text = serial.read_text(errors="replace") if serial.is_file() else ""
    results = SEAL_RESULT.findall(text)
    if not results:
        raise RuntimeError(f"the sealing boot reported nothing on its serial port (see {serial})")
    outcome, detail = results[-1]
    if outcome != "OK":
        raise RuntimeError(f"the sealing boot failed:{detail} (see {serial})")
    if not output.is_file():
        raise FileNotFoundError(f"packer left no {output}")
    return output
