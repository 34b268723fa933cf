"""The checks on addresses, netmasks, gateways, DNS servers, hostnames and passwords."""

from __future__ import annotations

import ipaddress

import pytest

from passerelle.engine.manage import users
from passerelle.firstboot.validate import (
    Invalid,
    check_password,
    parse_address,
    parse_dns,
    parse_gateway,
    parse_hostname,
    parse_prefix,
)


@pytest.mark.parametrize(
    ("text", "netmask", "expected"),
    [
        ("10.0.0.5/24", None, "10.0.0.5/24"),
        (" 10.0.0.5/255.255.255.0 ", None, "10.0.0.5/24"),
        ("10.0.0.5", "255.255.254.0", "10.0.0.5/23"),
        ("10.0.0.5", "/16", "10.0.0.5/16"),
        ("172.16.0.9", "30", "172.16.0.9/30"),
        ("192.0.2.1/32", None, "192.0.2.1/32"),
        ("2001:db8::10/64", None, "2001:db8::10/64"),
    ],
)
def test_addresses_accepted(text: str, netmask: str | None, expected: str) -> None:
    assert parse_address(text, netmask) == ipaddress.ip_interface(expected)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("300.1.1.1/24", "not an IPv4 or IPv6 address"),
        ("10.0.0.5", "has no prefix length"),
        ("10.0.0.5/33", "between 1 and 32"),
        ("10.0.0.5/0", "between 1 and 32"),
        ("10.0.0.5/255.0.255.0", "not contiguous"),
        ("10.0.0.5/0.0.0.255", "not contiguous"),
        ("10.0.0.0/24", "network address"),
        ("10.0.0.255/24", "broadcast address"),
        ("127.0.0.5/8", "loopback"),
        ("224.0.0.5/24", "multicast"),
        ("169.254.3.4/16", "link-local"),
        ("0.0.0.0/8", "unspecified"),
        ("240.0.0.1/8", "reserved"),
        ("010.0.0.5/24", "not an IPv4 or IPv6 address"),
        ("", "required"),
    ],
)
def test_bad_addresses_refused_with_reason(text: str, reason: str) -> None:
    with pytest.raises(Invalid, match=reason) as refused:
        parse_address(text)
    assert refused.value.field in ("ip", "netmask")


def test_netmask_forms() -> None:
    assert parse_prefix("255.255.255.128") == 25
    assert parse_prefix("255.255.255.255") == 32
    assert parse_prefix("64", version=6) == 64
    with pytest.raises(Invalid, match="not contiguous"):
        parse_prefix("255.255.0.255")
    with pytest.raises(Invalid, match="neither a netmask"):
        parse_prefix("banana")
    with pytest.raises(Invalid, match="leaves no network"):
        parse_prefix("0.0.0.0")


def test_gateway_must_be_on_the_subnet() -> None:
    address = parse_address("10.0.0.5/24")
    assert parse_gateway("10.0.0.1", address) == ipaddress.ip_address("10.0.0.1")
    with pytest.raises(Invalid, match=r"outside 10\.0\.0\.0/24"):
        parse_gateway("10.0.1.1", address)
    with pytest.raises(Invalid, match="own address"):
        parse_gateway("10.0.0.5", address)
    with pytest.raises(Invalid, match="broadcast"):
        parse_gateway("10.0.0.255", address)
    with pytest.raises(Invalid, match="same IP version"):
        parse_gateway("2001:db8::1", address)
    v6 = parse_address("2001:db8::10/64")
    assert str(parse_gateway("fe80::1", v6)) == "fe80::1"


def test_dns_list() -> None:
    assert [str(s) for s in parse_dns("10.0.0.53, 10.0.0.54 10.0.0.53")] == [
        "10.0.0.53",
        "10.0.0.54",
    ]
    assert parse_dns(["9.9.9.9"]) == (ipaddress.ip_address("9.9.9.9"),)
    with pytest.raises(Invalid, match="at most 3"):
        parse_dns("1.1.1.1 1.0.0.1 8.8.8.8 8.8.4.4")
    with pytest.raises(Invalid, match="not an IPv4"):
        parse_dns("1.1.1.1 dns.example")
    with pytest.raises(Invalid, match="cannot be a DNS server"):
        parse_dns("0.0.0.0")


@pytest.mark.parametrize("name", ["lb1", "LB-01.Example.com", "a" * 63, "x1.y2"])
def test_hostnames_accepted(name: str) -> None:
    assert parse_hostname(name) == name.lower()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "required"),
        ("lb_1", "only letters"),
        ("-lb1", "hyphen"),
        ("lb1-", "hyphen"),
        ("lb..example", "empty parts"),
        ("a" * 64, "longer than 63"),
        ("a" * 40 + "." + "b" * 30, "at most 64"),
        ("10.0.0.5", "looks like an address"),
        ("localhost", "reserved"),
        ("café", "only letters"),
    ],
)
def test_bad_hostnames_refused(name: str, reason: str) -> None:
    with pytest.raises(Invalid, match=reason):
        parse_hostname(name)


def test_passwords() -> None:
    assert check_password("correct horse", "correct horse") == "correct horse"
    with pytest.raises(Invalid, match="at least 8"):
        check_password("short")
    with pytest.raises(Invalid, match="differ"):
        check_password("long enough 1", "long enough 2")
    with pytest.raises(Invalid, match="control characters"):
        check_password("tab\there-too")
    with pytest.raises(Invalid, match="start or end with a space"):
        check_password(" spaced out ")


def test_password_rules_match_the_management_plane() -> None:
    from passerelle.firstboot import validate

    assert validate.MIN_PASSWORD == users.MIN_PASSWORD
    assert validate.MAX_PASSWORD == users.MAX_PASSWORD
