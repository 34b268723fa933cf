"""Templates as data: rendering, parameter checks, preview, import/export, the SfB reference."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from passerelle.demo.sfb import (
    EXTERNAL_WEB_NAMES,
    OOS_NAME,
    Certificates,
    Layout,
    reference_config,
)
from passerelle.engine.manage.templates import (
    TemplateCollision,
    apply_to,
    export_template,
    get_template,
    import_template,
    list_templates,
    preview,
    render_template,
)
from passerelle.engine.model.config import Certificate, Config
from passerelle.engine.model.errors import ConfigError, validate_config

BUILTIN = {
    "sfb-front-end-pool",
    "sfb-director-pool",
    "sfb-reverse-proxy",
    "office-online-server",
    "exchange",
}


@pytest.fixture(scope="module")
def reference() -> tuple[Layout, Config]:
    layout = Layout()
    return layout, validate_config(reference_config(layout, Certificates.create(layout)))


def pool_params(layout: Layout) -> dict[str, object]:
    return {
        "vip": layout.hlb_vip,
        "front_ends": layout.front_ends,
        "https_port": layout.https,
        "http_port": layout.http,
        "external_web_port": layout.https_external,
        "health_port": layout.sip_tls,
        "health_interval": int(layout.health_interval),
        "health_timeout": int(layout.health_timeout),
        "idle_timeout": int(layout.idle_timeout),
    }


def proxy_params(layout: Layout) -> dict[str, object]:
    webext, meet, dialin, lyncdiscover = EXTERNAL_WEB_NAMES
    return {
        "vip": layout.rp_vip,
        "https_port": layout.https,
        "certificate": "contoso-edge",
        "webext_name": webext,
        "meet_name": meet,
        "dialin_name": dialin,
        "lyncdiscover_name": lyncdiscover,
        "pool_vip": layout.hlb_vip,
        "pool_external_port": layout.https_external,
        "office_online_names": [OOS_NAME],
        "office_online_servers": layout.office_online,
        "office_online_port": layout.https,
        "http_front_ends": layout.front_ends,
        "http_port": layout.http,
        "http_external_port": layout.http_external,
        "health_port": layout.sip_tls,
        "health_interval": int(layout.health_interval),
        "health_timeout": int(layout.health_timeout),
        "idle_timeout": int(layout.idle_timeout),
    }


def test_builtin_templates_are_listed_with_their_parameters():
    infos = {t.name: t for t in list_templates()}
    assert set(infos) == BUILTIN
    pool = infos["sfb-front-end-pool"]
    assert pool.version == "1.0" and pool.builtin
    vip = next(p for p in pool.parameters if p.name == "vip")
    assert (vip.kind, vip.required, vip.default) == ("address", True, None)
    idle = next(p for p in pool.parameters if p.name == "idle_timeout")
    assert (idle.kind, idle.default) == ("integer", 1800)
    affinity = next(p for p in infos["office-online-server"].parameters if p.name == "affinity")
    assert affinity.choices == ("cookie", "source_ip")
    with pytest.raises(KeyError):
        get_template("no-such-template")


def test_sfb_templates_reproduce_the_reference_deployment(reference):
    layout, expected = reference
    current = Config(certificates=expected.certificates)
    step = preview(current, "sfb-front-end-pool", pool_params(layout))
    assert step.added == ["sfb-fe-443", "sfb-fe-80", "sfb-fe-4443"]
    assert step.problems == []
    step = preview(step.config, "sfb-reverse-proxy", proxy_params(layout))
    assert step.added == ["sfb-reverse-proxy", "sfb-reverse-proxy-http"]
    assert step.problems == []
    assert step.config.model_dump(mode="json") == expected.model_dump(mode="json")


def test_director_pool_has_the_front_end_pool_shape(reference):
    layout, _ = reference
    fe = render_template("sfb-front-end-pool", pool_params(layout))
    params = pool_params(layout)
    params["directors"] = params.pop("front_ends")
    director = render_template("sfb-director-pool", {**params, "name": "sfb-fe"})
    assert director == fe
    assert render_template("sfb-director-pool", params)["virtual_services"][0]["name"] == (
        "sfb-dir-443"
    )


def test_reverse_proxy_options_leave_out_office_online_and_port_80():
    params = {
        "vip": "10.0.0.10",
        "certificate": "edge",
        "webext_name": "webext.contoso.com",
        "meet_name": "meet.contoso.com",
        "dialin_name": "dialin.contoso.com",
        "lyncdiscover_name": "lyncdiscover.contoso.com",
        "pool_vip": "10.0.1.20",
    }
    services = render_template("sfb-reverse-proxy", params)["virtual_services"]
    assert [vs["name"] for vs in services] == ["sfb-reverse-proxy"]
    assert [sub["name"] for sub in services[0]["subvs"]] == ["fe-external-web"]
    assert services[0]["subvs"][0]["real_servers"] == [{"address": "10.0.1.20", "port": 4443}]
    with_cookie = render_template(
        "sfb-reverse-proxy",
        {
            **params,
            "office_online_names": "owa.contoso.com",
            "office_online_servers": "10.0.2.1, 10.0.2.2",
            "office_online_affinity": "cookie",
        },
    )["virtual_services"][0]["subvs"][1]
    assert with_cookie["persistence"]["mode"] == "active_cookie"
    assert with_cookie["rules"] == [{"host": ["owa.contoso.com"]}]
    assert len(with_cookie["real_servers"]) == 2


def test_office_online_and_exchange_render_to_valid_services():
    cert = Certificate(name="mail", cert_pem="x")
    current = Config.model_construct(certificates=[cert], virtual_services=[])
    oos = render_template(
        "office-online-server",
        {"vip": "10.0.0.30", "certificate": "mail", "servers": ["10.0.2.1", "10.0.2.2"]},
        current,
    )["virtual_services"][0]
    assert oos["health_check"]["path"] == "/hosting/discovery"
    assert oos["persistence"]["mode"] == "active_cookie"
    assert oos["reencrypt"]["enabled"] is True
    exchange = render_template(
        "exchange", {"vip": "10.0.0.40", "certificate": "mail", "servers": ["10.0.3.1"]}, current
    )["virtual_services"][0]
    paths = {sub["name"]: sub["health_check"]["path"] for sub in exchange["subvs"]}
    assert paths["activesync"] == "/Microsoft-Server-ActiveSync/healthcheck.htm"
    assert set(paths) == {"owa", "ecp", "ews", "activesync", "mapi", "autodiscover", "rpc", "oab"}
    assert exchange["default_subvs"] == "owa"
    merged = {"certificates": [{"name": "mail", "cert_pem": "x"}], "virtual_services": [exchange]}
    assert Config.model_validate(merged).virtual_services[0].subvs[3].rules[0].path_regex


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"front_ends": ["10.0.0.1"]}, "parameters.vip", "required"),
        ({"vip": "10.0.0.300", "front_ends": ["10.0.0.1"]}, "parameters.vip", "not an IPv4"),
        ({"vip": "10.0.0.3", "front_ends": "10.0.0.1 10.0.0.1"}, "parameters.front_ends", "twice"),
        (
            {"vip": "10.0.0.3", "front_ends": ["10.0.0.1"], "https_port": 70000},
            "parameters.https_port",
            "1 to 65535",
        ),
        (
            {"vip": "10.0.0.3", "front_ends": ["10.0.0.1"], "idle_timeout": 0},
            "parameters.idle_timeout",
            "at least 1",
        ),
        (
            {"vip": "10.0.0.3", "front_ends": ["10.0.0.1"], "name": "bad name"},
            "parameters.name",
            "must match",
        ),
        ({"vip": "10.0.0.3", "front_ends": ["10.0.0.1"], "colour": 1}, "parameters.colour", "no"),
    ],
)
def test_bad_parameters_are_refused_naming_the_parameter(params, field, words):
    with pytest.raises(ConfigError) as caught:
        preview(Config(), "sfb-front-end-pool", params)
    assert caught.value.field == field
    assert words in caught.value.message


def test_certificate_parameter_must_name_an_installed_certificate():
    with pytest.raises(ConfigError) as caught:
        preview(
            Config(),
            "office-online-server",
            {"vip": "10.0.0.30", "certificate": "absent", "servers": ["10.0.2.1"]},
        )
    assert caught.value.field == "parameters.certificate"
    assert "no certificate named 'absent'" in caught.value.message


def test_preview_shows_replaced_unchanged_and_problems():
    params = {"vip": "10.0.0.3", "front_ends": ["10.0.0.1", "10.0.0.2"]}
    first = preview(Config(), "sfb-front-end-pool", params)
    assert first.replaced == [] and first.unchanged == []
    again = preview(first.config, "sfb-front-end-pool", params)
    assert again.added == [] and again.replaced == []
    assert again.unchanged == ["sfb-fe-443", "sfb-fe-80", "sfb-fe-4443"]
    changed = preview(first.config, "sfb-front-end-pool", {**params, "idle_timeout": 900})
    assert changed.replaced == ["sfb-fe-443", "sfb-fe-80", "sfb-fe-4443"]
    assert changed.config.virtual_services[0].idle_timeout == 900
    # Another prefix on the same VIP: the listeners collide, and validation says where.
    clash = preview(first.config, "sfb-front-end-pool", {**params, "name": "other"})
    assert clash.added == ["other-443", "other-80", "other-4443"]
    assert clash.problems[0][0] == "virtual_services[3].ports"
    assert "already used by 'sfb-fe-443'" in clash.problems[0][1]


TEMPLATE = """\
name: plain-web
version: "2.1"
title: A plain web farm
description: Round robin over HTTP.
parameters:
  - {name: vip, title: VIP, kind: address, required: true}
  - {name: servers, title: Servers, kind: addresses, required: true}
  - {name: port, title: Port, kind: port, default: 80}
  - {name: sticky, title: Sticky, kind: boolean, default: false}
body:
  virtual_services:
    - name: web-${port}
      address: ${vip}
      ports: ["${port}"]
      real_servers:
        $for: servers
        as: s
        do: {address: "${s}", port: 8080}
      persistence:
        $if: sticky
        then: {mode: source_ip}
      headers:
        response_add: {X-Note: "literal $${not_a_parameter}"}
"""


def test_import_export_round_trip(tmp_path: Path):
    info = import_template(TEMPLATE, tmp_path)
    assert (info.name, info.version, info.builtin) == ("plain-web", "2.1", False)
    assert export_template("plain-web", tmp_path) == TEMPLATE
    assert "plain-web" in {t.name for t in list_templates(tmp_path)}
    assert "plain-web" not in {t.name for t in list_templates()}
    result = preview(
        Config(),
        "plain-web",
        {"vip": "10.0.0.9", "servers": "10.0.0.1", "sticky": "true"},
        tmp_path,
    )
    vs = result.config.virtual_services[0]
    assert (vs.name, vs.ports, vs.persistence.mode) == ("web-80", [80], "source_ip")
    assert vs.headers.response_add == {"X-Note": "literal ${not_a_parameter}"}
    plain = render_template(
        "plain-web", {"vip": "10.0.0.9", "servers": ["10.0.0.1"]}, None, tmp_path
    )
    assert "persistence" not in plain["virtual_services"][0]
    # a builtin exports as its data file and imports back only under another name
    text = export_template("exchange")
    assert text.startswith("name: exchange")
    with pytest.raises(ConfigError, match="built-in"):
        import_template(text, tmp_path)
    renamed = import_template(text.replace("name: exchange", "name: exchange-copy", 1), tmp_path)
    assert renamed.parameters == get_template("exchange").parameters


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        (TEMPLATE.replace("${vip}", "${vpi}"), "body.virtual_services[0].address", "${vpi}"),
        (TEMPLATE.replace("$for: servers", "$for: hosts"), "body", "'hosts' is not a parameter"),
        (TEMPLATE.replace("$if: sticky", "$exec: sticky"), "body", "unknown directive"),
        (TEMPLATE.replace("port: 8080", "port: 99999"), "body.virtual_services[0]", "65535"),
        (TEMPLATE.replace("default: 80", "default: eighty"), "parameters[2].default", "whole"),
        (TEMPLATE.replace("kind: port", "kind: script"), "parameters[2].kind", "Input should be"),
        (TEMPLATE + "extra: 1\n", "extra", ""),
        (
            "name: x\nversion: '1'\ntitle: t\nbody: !!python/object/apply:os.system [ls]\n",
            "",
            "YAML",
        ),
        ("a: &x [1]\nb: *x\n", "", "aliases"),
        ("- just a list\n", "", "mapping"),
    ],
)
def test_bad_templates_are_refused_on_import(tmp_path: Path, text, field, words):
    with pytest.raises(ConfigError) as caught:
        import_template(text, tmp_path)
    assert caught.value.field.startswith(field)
    assert words in caught.value.message
    assert list(tmp_path.iterdir()) == []  # nothing stored


def test_apply_to_edits_configuration_data_in_place_or_not_at_all():
    params = {"vip": "10.0.0.3", "front_ends": ["10.0.0.1"]}
    data = Config().model_dump(mode="json")
    result = apply_to(data, "sfb-front-end-pool", params)
    assert result.added == [vs["name"] for vs in data["virtual_services"]]
    before = copy.deepcopy(data)
    with pytest.raises(TemplateCollision) as caught:
        apply_to(data, "sfb-front-end-pool", {**params, "idle_timeout": 900})
    assert caught.value.field == "virtual_services[0].name"
    assert data == before
    with pytest.raises(ConfigError) as invalid:
        apply_to(data, "sfb-front-end-pool", {**params, "name": "again"})
    assert invalid.value.field == "virtual_services[3].ports"
    assert data == before
    apply_to(data, "sfb-front-end-pool", {**params, "idle_timeout": 900}, replace=True)
    assert [vs["idle_timeout"] for vs in data["virtual_services"]] == [900, 900, 900]
