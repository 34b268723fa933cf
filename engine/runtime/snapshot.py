"""The configuration as a worker receives it: the validated model's fields as plain objects.

The supervisor validates every configuration with the pydantic model; a worker only reads it.
Sending it as pydantic objects would make each worker import pydantic and build the model's
classes (~7 MB resident per worker, counted again for every worker). ``plain`` copies the
validated objects field by field into the classes below, which pickle without pydantic, so
neither a forked worker nor a restarted one ever imports it. The data plane's code is typed
against the model's classes: these have the same fields and the members it uses.

This module imports nothing from the model: it is what keeps pydantic out of the workers.
"""

from __future__ import annotations

from typing import Any


def endpoint_key(address: str, port: int) -> str:
    """A real server's identity inside its pool, ``RealServer.key`` of the model."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


class Plain:
    """One model object's fields as attributes; equal to another of the same class and fields."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.__dict__.update(fields)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.__dict__ == self.__dict__

    def __hash__(self) -> int:
        return hash((type(self), *map(_hashable, self.__dict__.values())))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.__dict__.items())
        return f"{type(self).__name__}({fields})"


class PlainRealServer(Plain):
    @property
    def key(self) -> str:
        return endpoint_key(self.address, self.port)


class PlainConfig(Plain):
    def service(self, name: str) -> Any:
        for vs in self.virtual_services:
            if vs.name == name:
                return vs
        raise KeyError(name)


# Model classes whose plain copy needs more than fields (by class name: no model import here).
_WITH_MEMBERS: dict[str, type[Plain]] = {"RealServer": PlainRealServer, "Config": PlainConfig}


_LEAVES = frozenset((str, int, float, bool, bytes, type(None)))


def plain(value: Any) -> Any:
    """``value`` with every pydantic model in it copied into a ``Plain`` (supervisor side)."""
    kind = type(value)
    if kind in _LEAVES:  # most values: answered before any other test
        return value
    if kind is list or kind is tuple:
        return kind(plain(item) for item in value)
    if kind is dict:
        return {key: plain(item) for key, item in value.items()}
    if hasattr(kind, "model_fields"):
        # A model's __dict__ holds exactly its fields (extra ones are forbidden).
        fields = {name: plain(item) for name, item in value.__dict__.items()}
        return _WITH_MEMBERS.get(kind.__name__, Plain)(fields)
    return value


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(map(_hashable, value))
    if isinstance(value, dict):
        return tuple((key, _hashable(item)) for key, item in value.items())
    return value
