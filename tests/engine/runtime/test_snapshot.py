"""The configuration snapshot a supervisor sends its workers: the validated objects, pickled."""

from __future__ import annotations

import base64
import pickle

import pytest

from passerelle.engine.model.errors import validate_config
from passerelle.engine.runtime.supervisor import _pickled
from passerelle.engine.runtime.worker import unpickled_config


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
    assert copy == config
    assert copy.model_dump(mode="json") == config.model_dump(mode="json")


def test_a_snapshot_of_anything_but_a_configuration_is_refused():
    with pytest.raises(TypeError):
        unpickled_config(base64.b64encode(pickle.dumps({"virtual_services": []})).decode())
