"""The configuration snapshot a supervisor sends its workers: the validated objects copied into
plain ones (no pydantic in a worker), pickled."""

from __future__ import annotations

import base64
import pickle
from typing import Any

import pytest

from passerelle.engine.model.errors import validate_config
from passerelle.engine.runtime.snapshot import Plain
from passerelle.engine.runtime.supervisor import _pickled
from passerelle.engine.runtime.worker import unpickled_config


def same(model: Any, copy: Any) -> bool:
    """Whether ``copy`` reads like ``model``: every field of every model, at every depth."""
    fields = getattr(type(model), "model_fields", None)
    if fields is not None:
        return isinstance(copy, Plain) and all(
            same(getattr(model, name), getattr(copy, name)) for name in fields
        )
    if isinstance(model, list | tuple):
        return len(model) == len(copy) and all(map(same, model, copy))
    if isinstance(model, dict):
        return model.keys() == copy.keys() and all(same(model[k], copy[k]) for k in model)
    return type(copy) is type(model) and copy == model


def test_a_snapshot_gives_the_worker_the_same_configuration():
    config = validate_config(
        {
            "virtual_services": [
                {
                    "name": "web",
                    "address": "127.0.0.1",
                    "ports": [8080, 8081],
                    "persistence": {"mode": "source_ip"},
                    "real_servers": [
                        {"address": "127.0.0.1", "port": 9000},
                        {"address": "127.0.0.1", "port": 9001, "weight": 3},
                    ],
                }
            ]
        }
    )
    copy = unpickled_config(_pickled(config))
    assert same(config, copy)
    assert copy == unpickled_config(_pickled(config))
    # What the data plane reads beyond the fields.
    web = copy.service("web")
    assert web is copy.virtual_services[0]
    assert [s.key for s in web.real_servers] == ["127.0.0.1:9000", "127.0.0.1:9001"]
    with pytest.raises(KeyError):
        copy.service("other")


def test_a_snapshot_with_subvs_rules_and_options_copies_every_field():
    config = validate_config(
        {
            "virtual_services": [
                {
                    "name": "v6",
                    "address": "::1",
                    "ports": [8080],
                    "real_servers": [{"address": "::1", "port": 9000, "state": "draining"}],
                    "health_check": {"type": "http", "path": "/up", "host": "a.example"},
                    "headers": {"request_add": {"X-A": "1"}, "request_remove": ["X-B"]},
                },
                {
                    "name": "switch",
                    "address": "127.0.0.1",
                    "ports": [8081],
                    "subvs": [
                        {
                            "name": "api",
                            "rules": [{"path_prefix": "/api"}],
                            "real_servers": [{"address": "127.0.0.1", "port": 9001}],
                            "reencrypt": {"verify": False, "sni": "none"},
                        }
                    ],
                    "default_subvs": "api",
                },
            ]
        }
    )
    copy = unpickled_config(_pickled(config))
    assert same(config, copy)
    assert copy.service("v6").real_servers[0].key == "[::1]:9000"


def test_a_snapshot_of_anything_but_a_configuration_is_refused():
    with pytest.raises(TypeError):
        unpickled_config(base64.b64encode(pickle.dumps({"virtual_services": []})).decode())
