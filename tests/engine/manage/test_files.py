"""Reading configuration files and exporting configurations back to text."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from passerelle.engine.manage.files import ConfigFileError, dump_config, load_config_file
from passerelle.engine.model import Config, validate_config
from passerelle.engine.tls.certificates import make_self_signed

PEM, KEY = make_self_signed("www.example.com", ["www.example.com"])


def rich_config() -> Config:
    """Every kind of object the schema has, with many fields away from their defaults."""
    return validate_config(
        {
            "certificates": [
                {"name": "www", "cert_pem": PEM, "key_pem": KEY, "chain_pem": PEM},
                {"name": "internal-ca", "cert_pem": PEM, "key_pem": KEY},
            ],
            "virtual_services": [
                {
                    "name": "web",
                    "address": "192.0.2.10",
                    "ports": [443, 8443],
                    "tls": {
                        "certificates": ["www"],
                        "cipher_set": "modern",
                        "min_version": "TLS1.3",
                    },
                    "headers": {
                        "x_forwarded_for": "off",
                        "request_add": {"X-Mode": "yes", "X-Exp": "1e3", "X-Empty": ""},
                        "response_remove": ["Server"],
                    },
                    "idle_timeout": 120,
                    "subvs": [
                        {
                            "name": "api",
                            "rules": [
                                {"host": ["api.example.com", "*.api.example.com"]},
                                {
                                    "path_prefix": "/api/",
                                    "header": "X-Api",
                                    "header_regex": "^v[0-9]+$",
                                },
                            ],
                            "real_servers": [
                                {"address": "10.0.0.1", "port": 8080, "weight": 500},
                                {"address": "10.0.0.2", "port": 8080, "state": "draining"},
                            ],
                            "scheduling": "least_connection",
                            "persistence": {"mode": "active_cookie", "cookie_name": "SRV"},
                            "health_check": {
                                "type": "http",
                                "path": "/health",
                                "expected_status": [200],
                                "interval": 2.5,
                                "timeout": 1,
                            },
                            "reencrypt": {"verify": True, "ca_certificate": "internal-ca"},
                        },
                        {
                            "name": "static",
                            "real_servers": [{"address": "2001:db8::5", "port": 80}],
                            "persistence": {"mode": "source_ip", "ipv4_prefix": 24},
                            "health_check": {"type": "none"},
                        },
                    ],
                    "default_subvs": "static",
                    "no_match": {"status": 503, "body": "closed\n"},
                },
                {
                    "name": "lync",
                    "enabled": False,
                    "address": "1:2:3:4:5:6:7:8",
                    "ports": [5061],
                    "mode": "l4",
                    "real_servers": [{"address": "10.0.1.1", "port": 5061}],
                    "scheduling": "source_ip_hash",
                    "health_check": {"port": 5062},
                },
            ],
        }
    )


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


YAML_TEXT = """\
virtual_services:
  - name: web
    address: 127.0.0.1
    ports: [80]
    headers:
      x_forwarded_for: off
    real_servers:
      - address: 127.0.0.1
        port: 8080
        weight: 010
"""


@pytest.mark.parametrize("name", ["site.yaml", "site.yml", "site"])
def test_yaml_loads_with_yaml_1_2_scalars(tmp_path: Path, name: str) -> None:
    data = load_config_file(write(tmp_path, name, YAML_TEXT))
    vs = data["virtual_services"][0]
    assert vs["headers"]["x_forwarded_for"] == "off"  # YAML 1.1 would say False
    assert vs["real_servers"][0]["weight"] == 10  # YAML 1.1 would say 8 (octal)
    assert validate_config(data).virtual_services[0].ports == [80]


@pytest.mark.parametrize("name", ["site.json", "site"])
def test_json_loads(tmp_path: Path, name: str) -> None:
    text = json.dumps({"virtual_services": [{"name": "a", "address": "::1", "ports": [80]}]})
    data = load_config_file(write(tmp_path, name, text))
    assert data["virtual_services"][0]["address"] == "::1"


def test_ipv6_address_is_not_a_sexagesimal_number(tmp_path: Path) -> None:
    data = load_config_file(write(tmp_path, "a.yaml", "address: 1:2:3:4:5:6:7:8\n"))
    assert data == {"address": "1:2:3:4:5:6:7:8"}


def test_dash_reads_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(YAML_TEXT.encode())))
    assert load_config_file("-")["virtual_services"][0]["name"] == "web"


def test_yaml_syntax_error_reports_the_line(tmp_path: Path) -> None:
    text = "virtual_services:\n  - name: web\n    address: [127.0.0.1\n    ports: 80\n"
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(ConfigFileError) as info:
        load_config_file(path)
    assert info.value.field == ""
    assert info.value.line is not None and 3 <= info.value.line <= 5
    assert f"line {info.value.line}" in info.value.message
    assert str(path) in info.value.message


def test_yaml_bad_indentation_reports_the_exact_line(tmp_path: Path) -> None:
    text = "virtual_services:\n  - name: web\n   address: 127.0.0.1\n"
    with pytest.raises(ConfigFileError) as info:
        load_config_file(write(tmp_path, "bad.yaml", text))
    assert info.value.line == 3


def test_json_syntax_error_reports_the_line(tmp_path: Path) -> None:
    text = '{\n  "virtual_services": [\n    {"name": "a",}\n  ]\n}\n'
    with pytest.raises(ConfigFileError) as info:
        load_config_file(write(tmp_path, "bad.json", text))
    assert info.value.line == 3
    assert "line 3" in str(info.value)


def test_duplicate_yaml_key_is_an_error_at_its_line(tmp_path: Path) -> None:
    text = "virtual_services:\n  - name: a\n    ports: [80]\n    name: b\n"
    with pytest.raises(ConfigFileError) as info:
        load_config_file(write(tmp_path, "dup.yaml", text))
    assert info.value.line == 4
    assert "duplicate key 'name'" in info.value.message


def test_duplicate_json_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="duplicate key 'a'"):
        load_config_file(write(tmp_path, "dup.json", '{"a": 1, "a": 2}'))


def test_yaml_merge_keys_still_override(tmp_path: Path) -> None:
    text = "base: &b {port: 80, weight: 5}\nserver:\n  <<: *b\n  port: 81\n"
    assert load_config_file(write(tmp_path, "m.yaml", text))["server"] == {"port": 81, "weight": 5}


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"missing\.yaml: cannot read"):
        load_config_file(tmp_path / "missing.yaml")
    with pytest.raises(ConfigFileError, match="cannot read"):
        load_config_file(tmp_path)  # a directory
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"comment: caf\xe9\n")
    with pytest.raises(ConfigFileError, match="not UTF-8"):
        load_config_file(path)


def test_empty_file_and_non_mapping_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="empty"):
        load_config_file(write(tmp_path, "empty.yaml", "\n  \n"))
    with pytest.raises(ConfigFileError, match="mapping"):
        load_config_file(write(tmp_path, "list.yaml", "- a\n- b\n"))
    assert load_config_file(write(tmp_path, "explicit.yaml", "{}\n")) == {}


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize("defaults", [False, True])
def test_export_reimports_to_an_identical_config(tmp_path: Path, fmt: str, defaults: bool) -> None:
    config = rich_config()
    text = dump_config(config, fmt, defaults=defaults)
    path = write(tmp_path, f"export.{fmt}", text)
    again = validate_config(load_config_file(path))
    assert again == config
    assert again.model_dump() == config.model_dump()


def test_export_of_an_empty_config_reimports() -> None:
    text = dump_config(Config())
    assert text.strip() == "{}"


def test_yaml_export_is_readable() -> None:
    text = dump_config(rich_config())
    data: dict[str, Any] = json.loads(dump_config(rich_config(), "json"))
    web = data["virtual_services"][0]
    # the name leads each object; defaults are left out
    assert next(iter(web)) == "name"
    assert next(iter(web["subvs"][0])) == "name"
    assert "connect_timeout" not in web and "protocol" not in web
    assert web["idle_timeout"] == 120
    # PEM as a literal block, not an escaped one-liner
    assert "  cert_pem: |\n    -----BEGIN CERTIFICATE-----\n" in text
    assert "ports: [443, 8443]" in text
    # strings another YAML reader could take for booleans or numbers stay quoted
    assert "x_forwarded_for: 'off'" in text
    assert "X-Mode: 'yes'" in text and "X-Exp: '1e3'" in text


def test_export_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match="toml"):
        dump_config(Config(), "toml")
