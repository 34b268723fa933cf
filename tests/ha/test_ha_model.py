"""The ``ha`` section of the model: defaults, canonical forms and errors that name the field."""

from __future__ import annotations

import pytest

from passerelle.engine.model import ConfigError, HASettings, validate_config

BASE = {
    "node": "a",
    "local_address": "10.0.0.11",
    "peer_address": "10.0.0.12",
    "interface": "eth0",
    "auth_secret": "s3cret-s3cret-s3cret",
}


def settings(**changes: object) -> dict[str, object]:
    return {**BASE, **changes}


def error(**changes: object) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        validate_config({"ha": settings(**changes)})
    return caught.value


def test_defaults_are_a_stable_pair():
    ha = validate_config({"ha": settings()}).ha
    assert isinstance(ha, HASettings)
    assert ha.preempt is False and ha.enabled is True
    assert ha.advert_interval == 1.0 and ha.vrrp_version == 2
    assert ha.effective_priority == 150
    assert HASettings.model_validate(settings(node="b")).effective_priority == 100
    assert validate_config({}).ha is None


def test_shared_addresses_are_canonical_cidrs():
    ha = HASettings.model_validate(settings(shared_addresses=["10.0.0.100/24", "10.0.0.101"]))
    assert ha.shared_addresses == ["10.0.0.100/24", "10.0.0.101/32"]


def test_fractional_advert_interval_needs_vrrp3_and_centiseconds():
    assert HASettings.model_validate(settings(advert_interval=0.2)).vrrp_version == 3
    assert error(advert_interval=0.125).field == "ha.advert_interval"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"peer_address": "10.0.0.11"}, "ha.peer_address"),
        ({"peer_address": "2001:db8::1"}, "ha.peer_address"),
        ({"local_address": "not-an-ip"}, "ha.local_address"),
        ({"interface": "eth0; rm -rf /"}, "ha.interface"),
        ({"auth_secret": "short"}, "ha.auth_secret"),
        ({"virtual_router_id": 0}, "ha.virtual_router_id"),
        ({"priority": 255}, "ha.priority"),
        ({"node": "c"}, "ha.node"),
        ({"shared_addresses": ["10.0.0.100/24", "bad"]}, "ha.shared_addresses[1]"),
        ({"shared_addresses": ["10.0.0.100/24", "10.0.0.100/32"]}, "ha.shared_addresses"),
        ({"shared_addresses": ["10.0.0.11/24"]}, "ha.shared_addresses"),
        ({"peer_api_url": "http://10.0.0.12/api/v1"}, "ha.peer_api_url"),
        ({"peer_certificate_sha256": "abc"}, "ha.peer_certificate_sha256"),
        ({"unknown": 1}, "ha.unknown"),
    ],
)
def test_errors_name_the_field(changes, field):
    assert error(**changes).field == field


def test_fingerprint_accepts_colon_form():
    colon = ":".join(["AB"] * 32)
    ha = HASettings.model_validate(settings(peer_certificate_sha256=colon))
    assert ha.peer_certificate_sha256 == "ab" * 32
