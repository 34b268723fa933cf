"""What the image leaves out of the root filesystem: build-time Python tools only."""

from pathlib import Path

from passerelle.image.rootfs import trim

SITE = "opt/passerelle/lib/python3.11/site-packages"
REMOVED = [
    f"{SITE}/pip/__init__.py",
    f"{SITE}/pip-23.0.1.dist-info/RECORD",
    f"{SITE}/setuptools/__init__.py",
    f"{SITE}/setuptools-66.1.1.dist-info/RECORD",
    f"{SITE}/pkg_resources/__init__.py",
    f"{SITE}/_distutils_hack/__init__.py",
    f"{SITE}/distutils-precedence.pth",
    "opt/passerelle/bin/pip",
    "opt/passerelle/bin/pip3.11",
    "usr/share/python-wheels/pip-23.0.1-py3-none-any.whl",
]
KEPT = [
    f"{SITE}/passerelle/__init__.py",
    f"{SITE}/gevent/__init__.py",
    f"{SITE}/pipes_are_not_pip.py",  # a name that merely starts alike
    "opt/passerelle/bin/passerelle",
    "opt/passerelle/bin/python3",
    "usr/lib/python3.11/ensurepip/__init__.py",
]


def test_trim_removes_build_tools_and_keeps_the_runtime(tmp_path: Path) -> None:
    for name in REMOVED + KEPT:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    (tmp_path / "opt/passerelle/bin/pip3").symlink_to("pip")
    removed = trim(tmp_path)
    assert [p for p in KEPT if not (tmp_path / p).exists()] == []
    assert [p for p in REMOVED if (tmp_path / p).exists()] == []
    assert not (tmp_path / "opt/passerelle/bin/pip3").is_symlink()
    assert tmp_path / f"{SITE}/pip" in removed
    assert trim(tmp_path) == []  # a second pass finds nothing
