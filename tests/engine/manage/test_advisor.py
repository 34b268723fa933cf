"""The Skype for Business compliance advisor: on the templates' output everything applicable
is met; each broken variant names the field to fix; the API serves the findings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from passerelle.engine.manage.advisor import (
    BROKEN,
    COOKIE,
    HEALTH,
    HOST,
    IDLE,
    MET,
    MOBILE,
    NOT_APPLICABLE,
    NTLM,
    OFFICE_ONLINE,
    PERSISTENCE,
    PORT_OFFSET_ENV,
    REENCRYPT,
    SkypePorts,
    assess,
    carries_skype,
    skype_services,
)
from passerelle.engine.manage.templates import render_template
from passerelle.engine.model.config import Certificate, Config, VirtualService
from passerelle.engine.tls.certificates import Authority

from support.api_client import LiveApi, start_api

POOL = {"vip": "10.0.1.20", "front_ends": ["10.0.2.11", "10.0.2.12", "10.0.2.13"]}
PROXY = {
    "vip": "10.0.0.10",
    "certificate": "edge",
    "webext_name": "webext.contoso.com",
    "meet_name": "meet.contoso.com",
    "dialin_name": "dialin.contoso.com",
    "lyncdiscover_name": "lyncdiscover.contoso.com",
    "pool_vip": "10.0.1.20",
    "office_online_names": ["owa.contoso.com"],
    "office_online_servers": ["10.0.3.1", "10.0.3.2"],
    "http_front_ends": POOL["front_ends"],
}


def deployment() -> dict[str, Any]:
    """The SfB templates' output as configuration data (no PEM needed to assess it)."""
    services = [
        *render_template("sfb-front-end-pool", POOL)["virtual_services"],
        *render_template("sfb-reverse-proxy", PROXY)["virtual_services"],
    ]
    return {"certificates": [{"name": "edge", "cert_pem": "x"}], "virtual_services": services}


def config_of(data: dict[str, Any]) -> Config:
    return Config.model_validate(data)


def statuses(config: Config, name: str) -> dict[str, tuple[str, str | None]]:
    return {f.requirement: (f.status, f.field) for f in assess(config, name)}


@pytest.fixture(autouse=True)
def _standard_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PORT_OFFSET_ENV, raising=False)


def test_templates_output_meets_every_applicable_requirement():
    config = config_of(deployment())
    names = skype_services(config)
    assert names == [
        "sfb-fe-443",
        "sfb-fe-80",
        "sfb-fe-4443",
        "sfb-reverse-proxy",
        "sfb-reverse-proxy-http",
    ]
    for name in names:
        findings = assess(config, name)
        assert [f for f in findings if f.status == BROKEN] == [], name
        assert all(f.field is None for f in findings)
    pool = statuses(config, "sfb-fe-443")
    assert pool[IDLE][0] == pool[HEALTH][0] == pool[PERSISTENCE][0] == pool[NTLM][0] == MET
    assert pool[REENCRYPT][0] == pool[MOBILE][0] == NOT_APPLICABLE
    proxy = statuses(config, "sfb-reverse-proxy")
    assert proxy[HOST][0] == proxy[MOBILE][0] == proxy[REENCRYPT][0] == MET
    assert proxy[OFFICE_ONLINE][0] == MET
    assert proxy[COOKIE][0] == NOT_APPLICABLE
    ntlm = next(f for f in assess(config, "sfb-reverse-proxy") if f.requirement == NTLM)
    assert "built into the engine" in ntlm.detail


def edited(change: Any) -> Config:
    data = deployment()
    change(data)
    return config_of(data)


def set_idle(data: dict[str, Any]) -> None:
    data["virtual_services"][2]["idle_timeout"] = 660


def set_health_port(data: dict[str, Any]) -> None:
    data["virtual_services"][0]["health_check"]["port"] = 443


def set_no_persistence(data: dict[str, Any]) -> None:
    data["virtual_services"][1]["persistence"] = {"mode": "none"}


def set_host_rewrite(data: dict[str, Any]) -> None:
    data["virtual_services"][3]["headers"] = {"request_add": {"Host": "pool.contoso.local"}}


def set_host_removed(data: dict[str, Any]) -> None:
    data["virtual_services"][3]["headers"] = {"request_remove": ["host"]}


def set_standard_cookie(data: dict[str, Any]) -> None:
    data["virtual_services"][3]["subvs"][0]["persistence"] = {"mode": "active_cookie"}


def set_wrong_cookie_name(data: dict[str, Any]) -> None:
    data["virtual_services"][3]["subvs"][0]["persistence"] = {
        "mode": "active_cookie",
        "cookie_style": "ms-wsman",
    }


def set_no_reencrypt(data: dict[str, Any]) -> None:
    data["virtual_services"][3]["subvs"][0]["reencrypt"] = None


def set_internal_port(data: dict[str, Any]) -> None:
    data["virtual_services"][3]["subvs"][0]["real_servers"][0]["port"] = 443


def set_no_affinity(data: dict[str, Any]) -> None:
    data["virtual_services"][3]["subvs"][1]["persistence"] = {"mode": "none"}


@pytest.mark.parametrize(
    ("change", "service", "requirement", "field"),
    [
        (set_idle, "sfb-fe-4443", IDLE, "virtual_services[2].idle_timeout"),
        (set_health_port, "sfb-fe-443", HEALTH, "virtual_services[0].health_check.port"),
        (set_no_persistence, "sfb-fe-80", PERSISTENCE, "virtual_services[1].persistence.mode"),
        (set_host_rewrite, "sfb-reverse-proxy", HOST, "virtual_services[3].headers.request_add"),
        (
            set_host_removed,
            "sfb-reverse-proxy",
            HOST,
            "virtual_services[3].headers.request_remove",
        ),
        (
            set_standard_cookie,
            "sfb-reverse-proxy",
            COOKIE,
            "virtual_services[3].subvs[0].persistence.cookie_style",
        ),
        (
            set_wrong_cookie_name,
            "sfb-reverse-proxy",
            COOKIE,
            "virtual_services[3].subvs[0].persistence.cookie_name",
        ),
        (
            set_no_reencrypt,
            "sfb-reverse-proxy",
            REENCRYPT,
            "virtual_services[3].subvs[0].reencrypt",
        ),
        (
            set_internal_port,
            "sfb-reverse-proxy",
            REENCRYPT,
            "virtual_services[3].subvs[0].real_servers[0].port",
        ),
        (
            set_no_affinity,
            "sfb-reverse-proxy",
            OFFICE_ONLINE,
            "virtual_services[3].subvs[1].persistence.mode",
        ),
    ],
)
def test_broken_variants_name_the_field(change, service, requirement, field):
    config = edited(change)
    assert service in skype_services(config)
    found = statuses(config, service)
    assert found[requirement] == (BROKEN, field)
    broken = [f for f in assess(config, service) if f.status == BROKEN]
    assert len(broken) == 1, broken


def test_idle_660_detail_says_what_microsoft_wants():
    finding = next(f for f in assess(edited(set_idle), "sfb-fe-4443") if f.requirement == IDLE)
    assert "660 s" in finding.detail and "1800 s" in finding.detail


def test_detection():
    config = config_of(deployment())
    assert all(carries_skype(config.service(n)) for n in ("sfb-fe-443", "sfb-reverse-proxy"))
    plain = VirtualService(
        name="intranet",
        address="10.0.5.1",
        ports=[443],
        real_servers=[{"address": "10.0.5.2", "port": 443}],
    )
    assert not carries_skype(plain)
    hosts_only = VirtualService(
        name="edge",
        address="10.0.5.1",
        ports=[8443],
        subvs=[{"name": "x", "rules": [{"host": ["LyncDiscover.fabrikam.com"]}]}],
    )
    assert carries_skype(hosts_only)
    # a pool whose health check went wrong is still found: the proxy forwards to its VIP
    data = deployment()
    for vs in data["virtual_services"][:3]:
        vs["health_check"]["port"] = None
    assert "sfb-fe-4443" in skype_services(config_of(data))
    assert "sfb-fe-443" in skype_services(config_of(data))  # same VIP, same front ends
    assert skype_services(Config(virtual_services=[plain])) == []


def test_shifted_ports_as_in_the_demo(monkeypatch: pytest.MonkeyPatch):
    shifted = SkypePorts().shifted(10000)
    pool = {**POOL, "https_port": 10443, "http_port": 10080}
    pool |= {"external_web_port": 14443, "health_port": 15061}
    services = render_template("sfb-front-end-pool", pool)["virtual_services"]
    config = Config(virtual_services=services)
    assert statuses(config, "sfb-fe-443")[HEALTH][0] == BROKEN
    assert statuses(config, "sfb-fe-443")[HEALTH] == (
        BROKEN,
        "virtual_services[0].health_check.port",
    )
    assert all(f.status != BROKEN for f in assess(config, "sfb-fe-443", shifted))
    monkeypatch.setenv(PORT_OFFSET_ENV, "10000")
    assert all(f.status != BROKEN for f in assess(config, "sfb-fe-443"))


def test_unknown_service():
    with pytest.raises(KeyError):
        assess(Config(), "absent")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[LiveApi]:
    live = start_api(tmp_path)
    yield live
    live.stop()


def test_compliance_api(api: LiveApi):
    data = edited(set_idle).model_dump(mode="json")
    # the store validates certificates whole: give the proxy a real one
    cert_pem, key_pem = Authority.create("CA").issue("webext.contoso.com", ["webext.contoso.com"])
    data["certificates"] = [
        Certificate(name="edge", cert_pem=cert_pem, key_pem=key_pem).model_dump()
    ]
    admin = api.client()
    assert admin.put("/api/v1/config", json=data).status_code == 200
    every = admin.get("/api/v1/compliance")
    assert every.status_code == 200
    reports = {r["virtual_service"]: r for r in every.json()}
    assert list(reports) == [vs["name"] for vs in data["virtual_services"]]
    assert reports["sfb-fe-4443"]["broken"] == 1
    assert reports["sfb-reverse-proxy"]["role"] == "reverse-proxy"
    one = admin.get("/api/v1/virtual-services/sfb-fe-4443/compliance").json()
    assert one["carries_skype"] is True and one["role"] == "internal-pool"
    broken = [f for f in one["findings"] if f["status"] == "broken"]
    assert broken == [
        {
            "requirement": IDLE,
            "status": "broken",
            "detail": broken[0]["detail"],
            "field": "virtual_services[2].idle_timeout",
        }
    ]
    assert admin.get("/api/v1/virtual-services/absent/compliance").status_code == 404
