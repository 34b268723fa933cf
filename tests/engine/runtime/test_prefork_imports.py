"""What the supervisor has imported when it forks its workers is resident again in each of them:
only what a worker needs is imported before. Run in a new interpreter, as the engine starts."""

from __future__ import annotations

import json
import subprocess
import sys

PROGRAM = """
import json, sys
import passerelle.engine.manage.daemon
before_fork = set(sys.modules)
import passerelle.engine.runtime.worker
print(json.dumps({"before_fork": sorted(before_fork), "worker": sorted(sys.modules)}))
"""


def imported() -> dict[str, list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(result.stdout)


def test_the_supervisor_forks_before_importing_what_only_it_uses():
    modules = imported()
    for when in ("before_fork", "worker"):
        names = modules[when]
        # pydantic's plugin loader is replaced by an empty module (runtime/lean.py), no more.
        assert [m for m in names if m.startswith("pydantic")] == ["pydantic.plugin._loader"]
        assert [m for m in names if m.startswith("passerelle.engine.model")] == []
        # Used by the supervisor only, or (tempfile) nowhere on Linux: made after the fork.
        assert "passerelle.engine.health.monitor" not in names
        assert not {"shutil", "tempfile"} & set(names)
    assert "passerelle.engine.runtime.supervisor" in modules["before_fork"]
