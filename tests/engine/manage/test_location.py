"""The command names the engine's control socket without pathlib; it must be the very path the
engine listens on (``control_path``), for every way a store can be written."""

from __future__ import annotations

from pathlib import Path

import pytest

from passerelle.engine.manage.location import (
    DEFAULT_PATH,
    PATH_ENV,
    control_path,
    control_socket,
    store_path,
)

STORES = [
    "passerelle.db",
    "a/b.db",
    "a//b.db",
    "./x.db",
    "x/./y.db",
    "dir/",
    "dir//",
    "/var/lib/p.db",
    "//host/p.db",
    "///x/y.db",
    "a/..",
    "..",
    "x/.",
    "a/b/./",
    "with space/x.db",
    "...",
]
NO_NAME = ["/", "//", "///", ".", "./", "/.", "//."]


def pathlib_socket(store: str) -> str:
    path = Path(store)
    return str(path.with_name(path.name + ".sock"))


@pytest.mark.parametrize("store", STORES)
def test_the_command_names_the_socket_pathlib_names(store: str) -> None:
    assert control_socket(store) == pathlib_socket(store)
    assert control_path(store) == Path(pathlib_socket(store))
    assert control_path(Path(store)) == Path(pathlib_socket(store))


@pytest.mark.parametrize("store", NO_NAME)
def test_a_store_without_a_file_name_has_no_socket(store: str) -> None:
    with pytest.raises(ValueError):
        pathlib_socket(store)
    with pytest.raises(ValueError):
        control_socket(store)


def test_the_socket_follows_the_store_the_command_would_open(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(PATH_ENV, raising=False)
    assert control_socket() == DEFAULT_PATH + ".sock"
    assert control_socket("") == DEFAULT_PATH + ".sock"  # as store_path: empty means unset
    monkeypatch.setenv(PATH_ENV, str(tmp_path / "env.db"))
    assert control_socket() == str(control_path(store_path())) == str(tmp_path / "env.db.sock")
    assert control_socket(str(tmp_path / "x.db")) == str(tmp_path / "x.db.sock")
