"""Content switching: SubVS selection by host, path, header and SNI."""

from __future__ import annotations

from typing import Any

import pytest

from passerelle.engine.http.rules import (
    ContentSwitch,
    RequestFacts,
    host_matches,
    normalise_host,
)
from passerelle.engine.model.config import VirtualService

SERVER = [{"address": "10.0.0.10", "port": 4443}]


def service(subvs: list[dict[str, Any]], default: str | None = None) -> VirtualService:
    return VirtualService.model_validate(
        {
            "name": "sfb-edge",
            "address": "192.0.2.10",
            "ports": [443],
            "subvs": [{"real_servers": SERVER, **s} for s in subvs],
            "default_subvs": default,
        }
    )


def facts(
    host: str = "",
    path: str = "/",
    sni: str | None = None,
    headers: dict[str, str] | None = None,
) -> RequestFacts:
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    return RequestFacts(host=normalise_host(host.encode()), path=path, sni=sni, header=lowered.get)


SFB = [
    {
        "name": "fe-web",
        "rules": [
            {
                "host": [
                    "webext.contoso.com",
                    "meet.contoso.com",
                    "dialin.contoso.com",
                    "lyncdiscover.contoso.com",
                ]
            }
        ],
    },
    {"name": "oos", "rules": [{"host": ["owa.contoso.com"]}]},
    {"name": "fallback"},
]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("webext.contoso.com", "fe-web"),
        ("meet.contoso.com", "fe-web"),
        ("dialin.contoso.com", "fe-web"),
        ("lyncdiscover.contoso.com", "fe-web"),
        ("owa.contoso.com", "oos"),
        ("WebExt.Contoso.COM:443", "fe-web"),
        ("owa.contoso.com.", "oos"),
        ("unknown.contoso.com", None),
        ("contoso.com", None),
        ("", None),
    ],
)
def test_skype_for_business_reference_shape(host: str, expected: str | None) -> None:
    assert ContentSwitch(service(SFB)).choose(facts(host)) == expected


def test_unknown_host_goes_to_the_default_subvs() -> None:
    switch = ContentSwitch(service(SFB, default="fallback"))
    assert switch.choose(facts("evil.example")) == "fallback"
    assert switch.choose(facts("owa.contoso.com")) == "oos"


def test_a_subvs_without_rules_is_reachable_only_as_default() -> None:
    vs = service([{"name": "catch"}, {"name": "web", "rules": [{"host": ["a.example"]}]}])
    assert ContentSwitch(vs).choose(facts("a.example")) == "web"
    assert ContentSwitch(vs).choose(facts("b.example")) is None


def test_first_matching_subvs_wins() -> None:
    specific = {"name": "api", "rules": [{"host": ["www.example"], "path_prefix": "/api/"}]}
    general = {"name": "site", "rules": [{"host": ["www.example"]}]}
    api_first = ContentSwitch(service([specific, general]))
    assert api_first.choose(facts("www.example", "/api/v1")) == "api"
    assert api_first.choose(facts("www.example", "/index.html")) == "site"
    site_first = ContentSwitch(service([general, specific]))
    assert site_first.choose(facts("www.example", "/api/v1")) == "site"


def test_all_conditions_of_a_rule_must_hold_and_any_rule_may_match() -> None:
    vs = service(
        [
            {
                "name": "admin",
                "rules": [
                    {"host": ["www.example"], "path_prefix": "/admin"},
                    {"host": ["admin.example"]},
                ],
            }
        ]
    )
    switch = ContentSwitch(vs)
    assert switch.choose(facts("www.example", "/admin/users")) == "admin"
    assert switch.choose(facts("www.example", "/public")) is None
    assert switch.choose(facts("other.example", "/admin")) is None
    assert switch.choose(facts("admin.example", "/anything")) == "admin"


def test_path_prefix_and_regex_apply_to_the_path_as_sent() -> None:
    vs = service(
        [
            {"name": "ews", "rules": [{"path_prefix": "/EWS/"}]},
            {"name": "images", "rules": [{"path_regex": r"\.(png|jpe?g)$"}]},
            {"name": "versioned", "rules": [{"path_regex": r"^/v[0-9]+/"}]},
        ]
    )
    switch = ContentSwitch(vs)
    assert switch.choose(facts("x", "/EWS/Exchange.asmx")) == "ews"
    assert switch.choose(facts("x", "/ews/exchange.asmx")) is None  # prefixes are case-sensitive
    assert switch.choose(facts("x", "/static/logo.jpeg")) == "images"
    assert switch.choose(facts("x", "/static/logo.jpeg.txt")) is None
    assert switch.choose(facts("x", "/v2/users")) == "versioned"
    assert switch.choose(facts("x", "/api/v2/users")) is None  # search, but anchored by ^
    assert switch.choose(facts("x", "/%45WS/")) is None  # not percent-decoded


def test_header_regex() -> None:
    vs = service(
        [
            {
                "name": "mobile",
                "rules": [{"header": "User-Agent", "header_regex": "(?i)android|iphone"}],
            },
            {"name": "tenant-b", "rules": [{"header": "X-Tenant", "header_regex": "^b$"}]},
        ]
    )
    switch = ContentSwitch(vs)
    assert switch.choose(facts("x", headers={"user-agent": "Mozilla/5.0 (iPhone)"})) == "mobile"
    assert switch.choose(facts("x", headers={"user-agent": "Mozilla/5.0 (X11)"})) is None
    assert switch.choose(facts("x", headers={"x-tenant": "b"})) == "tenant-b"
    assert switch.choose(facts("x", headers={"x-tenant": "bb"})) is None
    assert switch.choose(facts("x")) is None  # header absent


def test_header_lookup_uses_lowercase_names() -> None:
    asked: list[str] = []

    def header(name: str) -> str | None:
        asked.append(name)
        return "yes" if name == "x-flag" else None

    vs = service([{"name": "flagged", "rules": [{"header": "X-Flag", "header_regex": "yes"}]}])
    request = RequestFacts(host="h", path="/", sni=None, header=header)
    assert ContentSwitch(vs).choose(request) == "flagged"
    assert asked == ["x-flag"]


def test_sni_conditions() -> None:
    vs = service(
        [
            {"name": "sip", "rules": [{"sni": ["sip.contoso.com", "*.lync.contoso.com"]}]},
            {"name": "web", "rules": [{"host": ["sip.contoso.com"]}]},
        ]
    )
    switch = ContentSwitch(vs)
    assert switch.choose(facts("sip.contoso.com", sni="sip.contoso.com")) == "sip"
    assert switch.choose(facts("whatever", sni="SIP.Contoso.com.")) == "sip"
    assert switch.choose(facts("whatever", sni="edge.lync.contoso.com")) == "sip"
    assert switch.choose(facts("whatever", sni="a.b.lync.contoso.com")) is None
    assert switch.choose(facts("sip.contoso.com", sni=None)) == "web"  # no SNI: sni rule fails
    assert switch.choose(facts("sip.contoso.com", sni="other.contoso.com")) == "web"


def test_wildcard_host_rule_matches_one_label() -> None:
    vs = service(
        [
            {"name": "apex", "rules": [{"host": ["contoso.com"]}]},
            {"name": "any-sub", "rules": [{"host": ["*.Contoso.com"]}]},
        ]
    )
    switch = ContentSwitch(vs)
    assert switch.choose(facts("a.contoso.com")) == "any-sub"
    assert switch.choose(facts("A.CONTOSO.COM:8443")) == "any-sub"
    assert switch.choose(facts("contoso.com")) == "apex"
    assert switch.choose(facts("a.b.contoso.com")) is None
    assert switch.choose(facts("acontoso.com")) is None
    assert switch.choose(facts(".contoso.com")) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, ""),
        (b"", ""),
        (b"Example.COM", "example.com"),
        (b"example.com:8080", "example.com"),
        (b"example.com.", "example.com"),
        (b"example.com.:443", "example.com"),
        (b"[::1]:8443", "::1"),
        (b"[2001:DB8::1]", "2001:db8::1"),
        (b"192.0.2.1:80", "192.0.2.1"),
        (b" spaced.example ", "spaced.example"),
    ],
)
def test_normalise_host(raw: bytes | None, expected: str) -> None:
    assert normalise_host(raw) == expected


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("owa.contoso.com", "owa.contoso.com", True),
        ("OWA.contoso.com", "owa.CONTOSO.com", True),
        ("owa.contoso.com", "owa.contoso.co", False),
        ("*.contoso.com", "a.contoso.com", True),
        ("*.contoso.com", "contoso.com", False),
        ("*.contoso.com", "a.b.contoso.com", False),
        ("*.contoso.com", "xcontoso.com", False),
        ("*.contoso.com", "a.contoso.com.evil", False),
        ("contoso.com.", "contoso.com", True),
    ],
)
def test_host_matches(pattern: str, host: str, expected: bool) -> None:
    assert host_matches(pattern, host) is expected
