"""Validation of a whole configuration: refused whole, with the field named."""

from __future__ import annotations

import pytest

from passerelle.engine.model import ConfigError, validate_config
from passerelle.engine.tls.certificates import Authority, make_self_signed


def vs(**extra) -> dict:
    return {"name": "web", "address": "127.0.0.1", "ports": [80], **extra}


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (
            {"virtual_services": [vs(real_servers=[{"address": "10.0.0.1", "port": 0}])]},
            "virtual_services[0].real_servers[0].port",
        ),
        ({"virtual_services": [vs(address="10.0.0")]}, "virtual_services[0].address"),
        ({"virtual_services": [vs(), vs()]}, "virtual_services"),
        ({"virtual_services": [vs(), vs(name="other")]}, "virtual_services[1].ports"),
        ({"virtual_services": [vs(mode="l4", subvs=[{"name": "a"}])]}, "virtual_services[0].subvs"),
        ({"virtual_services": [vs(default_subvs="nope")]}, "virtual_services[0].default_subvs"),
        (
            {"virtual_services": [vs(tls={"certificates": ["missing"]})]},
            "virtual_services[0].tls.certificates[0]",
        ),
        (
            {"virtual_services": [vs(health_check={"interval": 1, "timeout": 2})]},
            "virtual_services[0].health_check.timeout",
        ),
        (
            {"virtual_services": [vs(health_check={"host": "a\r\nX-Evil: 1"})]},
            "virtual_services[0].health_check.host",
        ),
        (
            {"virtual_services": [vs(persistence={"mode": "header"})]},
            "virtual_services[0].persistence.header_name",
        ),
        (
            {"virtual_services": [vs(mode="l4", persistence={"mode": "active_cookie"})]},
            "virtual_services[0].persistence.mode",
        ),
        ({"virtual_services": [vs(protocol="udp")]}, "virtual_services[0].protocol"),
        (
            {"virtual_services": [vs(subvs=[{"name": "a", "rules": [{}]}])]},
            "virtual_services[0].subvs[0].rules[0].host",
        ),
        (
            {"virtual_services": [vs(subvs=[{"name": "a", "rules": [{"path_regex": "("}]}])]},
            "virtual_services[0].subvs[0].rules[0].path_regex",
        ),
        (
            {"virtual_services": [vs(headers={"request_add": {"X-A": "1\r\n2"}})]},
            "virtual_services[0].headers.request_add",
        ),
        ({"virtual_services": [vs(colour="blue")]}, "virtual_services[0].colour"),
    ],
)
def test_invalid_configurations_name_the_field(config: dict, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    assert caught.value.field == field, caught.value


def test_a_certificate_whose_key_does_not_match_is_refused() -> None:
    cert, _ = make_self_signed("a.contoso.com", ["a.contoso.com"])
    _, other_key = make_self_signed("b.contoso.com", ["b.contoso.com"])
    config = {
        "certificates": [{"name": "edge", "cert_pem": cert, "key_pem": other_key}],
        "virtual_services": [vs(tls={"certificates": ["edge"]})],
    }
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    assert caught.value.field == "certificates[0].key_pem"


def test_garbage_pem_is_refused() -> None:
    config = {"certificates": [{"name": "edge", "cert_pem": "nope", "key_pem": "nope"}]}
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    assert caught.value.field == "certificates[0].cert_pem"


def test_a_ca_used_only_as_trust_anchor_needs_no_key() -> None:
    ca = Authority.create()
    config = validate_config(
        {
            "certificates": [{"name": "internal-ca", "cert_pem": ca.cert_pem}],
            "virtual_services": [
                vs(
                    real_servers=[{"address": "10.0.0.1", "port": 443}],
                    reencrypt={"verify": True, "ca_certificate": "internal-ca"},
                )
            ],
        }
    )
    assert config.certificates[0].key_pem == ""


def test_offload_certificate_needs_its_key() -> None:
    cert, _ = make_self_signed("a.contoso.com", ["a.contoso.com"])
    config = {
        "certificates": [{"name": "edge", "cert_pem": cert}],
        "virtual_services": [vs(tls={"certificates": ["edge"]})],
    }
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    assert caught.value.field == "certificates[0].key_pem"
