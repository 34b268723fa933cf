"""Wheel-set hashing, layer cache keys, step reporting and tool failures."""

import io
import zipfile
from pathlib import Path

import pytest
from rich.console import Console

from passerelle.image.cache import LayerCache, key_of
from passerelle.image.steps import CommandFailed, StepFailed, Steps, run
from passerelle.image.wheels import wheel_set_hash


def _wheel(path: Path, record: str, stamp: tuple[int, ...]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo("demo-1.0.dist-info/RECORD", date_time=stamp)
        archive.writestr(info, record)
    return path


def test_wheel_set_hash_follows_contents_not_timestamps(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _wheel(
        tmp_path / "a" / "demo-1.0-py3-none-any.whl", "x.py,sha256=1,1\n", (2024, 1, 1, 0, 0, 0)
    )
    again = _wheel(
        tmp_path / "b" / "demo-1.0-py3-none-any.whl", "x.py,sha256=1,1\n", (2025, 6, 1, 0, 0, 0)
    )
    assert first.read_bytes() != again.read_bytes()
    assert wheel_set_hash([first]) == wheel_set_hash([again])
    changed = _wheel(
        tmp_path / "demo-1.0-py3-none-any.whl", "x.py,sha256=2,1\n", (2024, 1, 1, 0, 0, 0)
    )
    assert wheel_set_hash([changed]) != wheel_set_hash([first])


def test_cache_keys_change_with_any_input_and_commit_is_atomic(tmp_path: Path) -> None:
    inputs = {"packages": ["a", "b"], "suite": "bookworm"}
    assert key_of(inputs) == key_of(dict(reversed(list(inputs.items()))))
    assert key_of(inputs) != key_of({**inputs, "packages": ["a"]})
    cache = LayerCache(tmp_path)
    key = key_of(inputs)
    assert cache.get("base", key) is None
    partial = cache.partial("base", key)
    partial.write_bytes(b"tar")
    assert cache.get("base", key) is None  # a layer being written is never a hit
    final = cache.commit(partial, "base", key, inputs)
    assert cache.get("base", key) == final and final.read_bytes() == b"tar"
    assert not partial.exists()


def test_a_failing_tool_reports_its_output(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with pytest.raises(CommandFailed) as caught:
        run(["sh", "-c", "echo preparing; echo 'disk full' >&2; exit 3"], log=log)
    assert "status 3" in str(caught.value) and "disk full" in str(caught.value)
    assert "preparing" in log.read_text()


def test_a_failed_step_names_itself() -> None:
    out = io.StringIO()
    steps = Steps(total=2, console=Console(file=out, force_terminal=False, width=200))
    with steps.step("First"):
        pass
    with pytest.raises(StepFailed) as caught, steps.step("Second"):
        raise FileNotFoundError("no kernel in /boot")
    assert caught.value.step == "Second"
    assert str(caught.value) == "step 'Second' failed: no kernel in /boot"
    text = out.getvalue()
    assert "[1/2] First: done" in text and "[2/2] Second: failed" in text
    assert "First" in steps.timings and "Second" not in steps.timings
