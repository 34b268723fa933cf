"""Pydantic schema of a whole Passerelle configuration.

One schema serves the config file (YAML or JSON), the store and, later, the REST API. Every
field has a default that a commercial appliance would pick, so a minimal file stays short.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from passerelle.engine.model.ha import HASettings

Port = Annotated[int, Field(ge=1, le=65535)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
Seconds = Annotated[float, Field(gt=0, le=86400 * 7)]

SCHEDULING_METHODS = (
    "round_robin",
    "weighted_round_robin",
    "least_connection",
    "weighted_least_connection",
    "fixed_weighting",
    "source_ip_hash",
)
Scheduling = Literal[
    "round_robin",
    "weighted_round_robin",
    "least_connection",
    "weighted_least_connection",
    "fixed_weighting",
    "source_ip_hash",
]


class FieldError(ValueError):
    """A validation failure that names the field (relative to the model that raised it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Strict(BaseModel):
    """Unknown fields are errors: a typo in a config file must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from exc


class RealServer(Strict):
    address: str
    port: Port
    weight: Annotated[int, Field(ge=0, le=65535)] = 1000
    max_connections: Annotated[int, Field(ge=0)] = 0  # 0: unlimited
    # draining: established connections finish, new ones go elsewhere
    state: Literal["enabled", "disabled", "draining"] = "enabled"

    _check_address = field_validator("address")(classmethod(lambda cls, v: _ip(v)))

    @property
    def key(self) -> str:
        """Stable identity of the server inside its pool (survives reordering and reloads)."""
        return (
            f"{self.address}:{self.port}"
            if ":" not in self.address
            else f"[{self.address}]:{self.port}"
        )


class HealthCheck(Strict):
    type: Literal["none", "tcp", "http", "https"] = "tcp"
    port: Port | None = None  # alternate check port, e.g. 5061 for a 443 service
    method: Literal["GET", "HEAD", "OPTIONS", "POST"] = "GET"
    path: str = "/"
    host: str | None = None  # Host header; defaults to the server address
    expected_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=lambda: [200, 301, 302, 401], min_length=1
    )
    interval: Seconds = 10.0
    timeout: Seconds = 4.0
    retries: Annotated[int, Field(ge=1, le=100)] = 2  # consecutive failures before down
    rise: Annotated[int, Field(ge=1, le=100)] = 2  # consecutive successes before up

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        # It goes into a request line as the Host header: no room for spaces or line breaks.
        if v is not None and not re.fullmatch(
            r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?", v
        ):
            raise ValueError("must be a host name or address, optionally with :port")
        return v

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/") or any(c in v for c in " \r\n"):
            raise ValueError("must start with '/' and contain no spaces or line breaks")
        return v

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> HealthCheck:
        if self.timeout > self.interval:
            raise FieldError("timeout", "must not exceed interval")
        return self


class Persistence(Strict):
    mode: Literal["none", "source_ip", "active_cookie", "server_cookie", "header"] = "none"
    timeout: Seconds = 3600.0  # sliding: each use restarts it
    ipv4_prefix: Annotated[int, Field(ge=0, le=32)] = 32  # source_ip: clients in one subnet share
    ipv6_prefix: Annotated[int, Field(ge=0, le=128)] = 128
    cookie_name: str = "PASSERELLE"
    # ms-wsman follows Microsoft's Lync rules: not httpOnly, no expiry, set on every response
    # whose request came without it.
    cookie_style: Literal["standard", "ms-wsman"] = "standard"
    header_name: str | None = None  # header mode: the header whose value is the key

    @model_validator(mode="after")
    def _mode_fields(self) -> Persistence:
        if self.mode == "header" and not self.header_name:
            raise FieldError("header_name", "is required when mode is 'header'")
        if self.mode in ("active_cookie", "server_cookie") and not re.fullmatch(
            r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", self.cookie_name
        ):
            raise FieldError("cookie_name", "must be a valid cookie token")
        return self


class TLSOffload(Strict):
    """TLS terminated on the virtual service; certificates by name, the first is the default."""

    certificates: list[Name] = Field(min_length=1)
    cipher_set: Literal["best-practices", "intermediate", "backward-compatible", "modern"] = (
        "best-practices"
    )
    min_version: Literal["TLS1.0", "TLS1.1", "TLS1.2", "TLS1.3"] = "TLS1.2"


class TLSReencrypt(Strict):
    """TLS from the engine to the real servers."""

    enabled: bool = True
    verify: bool = False  # real servers commonly carry internal-CA certificates
    ca_certificate: Name | None = None  # a certificate by name that signs the servers' ones
    sni: Literal["host", "none"] | str = "host"  # 'host': the request's Host; or a fixed name


class HeaderOptions(Strict):
    x_forwarded_for: Literal["append", "replace", "off"] = "append"
    x_forwarded_proto: bool = True
    request_add: dict[str, str] = Field(default_factory=dict)
    request_remove: list[str] = Field(default_factory=list)
    response_add: dict[str, str] = Field(default_factory=dict)
    response_remove: list[str] = Field(default_factory=list)

    @field_validator("request_add", "response_add")
    @classmethod
    def _values(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            _header_name(name)
            if any(c in value for c in "\r\n\0"):
                raise ValueError(f"header {name!r}: value must not contain line breaks")
        return v

    @field_validator("request_remove", "response_remove")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        for name in v:
            _header_name(name)
        return v


def _header_name(name: str) -> None:
    if not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name):
        raise ValueError(f"{name!r} is not a valid header name")


class Rule(Strict):
    """Conditions that must all hold (AND); a SubVS matches when any of its rules does (OR)."""

    host: list[str] = Field(default_factory=list)  # exact or '*.suffix', case-insensitive
    path_prefix: str | None = None
    path_regex: str | None = None
    header: str | None = None  # header name for header_regex
    header_regex: str | None = None
    sni: list[str] = Field(default_factory=list)

    @field_validator("path_regex", "header_regex")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from exc
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> Rule:
        if not (self.host or self.path_prefix or self.path_regex or self.header or self.sni):
            raise FieldError(
                "host", "a rule needs at least one condition (host, path, header or sni)"
            )
        if (self.header is None) != (self.header_regex is None):
            raise FieldError("header_regex", "header and header_regex go together")
        return self


class Pool(Strict):
    """What a virtual service and a SubVS share: servers and how to choose among them."""

    real_servers: list[RealServer] = Field(default_factory=list)
    scheduling: Scheduling = "round_robin"
    persistence: Persistence = Field(default_factory=Persistence)
    health_check: HealthCheck = Field(default_factory=HealthCheck)
    reencrypt: TLSReencrypt | None = None

    @model_validator(mode="after")
    def _unique_servers(self) -> Pool:
        seen: set[str] = set()
        for i, server in enumerate(self.real_servers):
            if server.key in seen:
                raise FieldError(f"real_servers[{i}]", f"{server.key} is listed twice")
            seen.add(server.key)
        return self


class SubVS(Pool):
    name: Name
    rules: list[Rule] = Field(default_factory=list)  # empty: only reachable as default_subvs


class NoMatchResponse(Strict):
    status: Annotated[int, Field(ge=400, le=599)] = 404
    body: str = "No service is configured for this host name.\n"


class VirtualService(Pool):
    name: Name
    enabled: bool = True
    address: str
    ports: list[Port] = Field(min_length=1)
    protocol: Literal["tcp", "udp"] = "tcp"
    mode: Literal["l4", "http"] = "http"
    tls: TLSOffload | None = None
    idle_timeout: Seconds = 660.0
    connect_timeout: Seconds = 5.0
    header_timeout: Seconds = 30.0  # whole request head must arrive within this (slow clients)
    max_connections: Annotated[int, Field(ge=0)] = 0  # 0: unlimited
    headers: HeaderOptions = Field(default_factory=HeaderOptions)
    subvs: list[SubVS] = Field(default_factory=list)  # in precedence order: first match wins
    default_subvs: Name | None = None
    no_match: NoMatchResponse = Field(default_factory=NoMatchResponse)

    _check_address = field_validator("address")(classmethod(lambda cls, v: _ip(v)))

    @model_validator(mode="after")
    def _consistent(self) -> VirtualService:
        if len(set(self.ports)) != len(self.ports):
            raise FieldError("ports", "a port is listed twice")
        if self.protocol == "udp" and (self.mode != "l4" or self.tls):
            raise FieldError("protocol", "udp services must use mode 'l4' without tls")
        if self.subvs and self.mode != "http":
            raise FieldError("subvs", "content switching needs mode 'http'")
        if self.subvs and self.real_servers:
            raise FieldError("real_servers", "a service with SubVSs sends traffic only to them")
        names = [s.name for s in self.subvs]
        if len(set(names)) != len(names):
            raise FieldError("subvs", "SubVS names must be unique within a service")
        if self.default_subvs is not None and self.default_subvs not in names:
            raise FieldError("default_subvs", f"no SubVS named {self.default_subvs!r}")
        if self.mode != "http" and self.persistence.mode in (
            "active_cookie",
            "server_cookie",
            "header",
        ):
            raise FieldError("persistence.mode", f"{self.persistence.mode!r} needs mode 'http'")
        return self


class Certificate(Strict):
    name: Name
    cert_pem: str
    key_pem: str = ""  # empty only for a CA used as a re-encryption trust anchor
    chain_pem: str = ""


class Config(Strict):
    certificates: list[Certificate] = Field(default_factory=list)
    virtual_services: list[VirtualService] = Field(default_factory=list)
    ha: HASettings | None = None  # this appliance's half of an HA pair; never replicated

    @model_validator(mode="after")
    def _references(self) -> Config:
        cert_names = [c.name for c in self.certificates]
        if len(set(cert_names)) != len(cert_names):
            raise FieldError("certificates", "certificate names must be unique")
        vs_names = [v.name for v in self.virtual_services]
        if len(set(vs_names)) != len(vs_names):
            raise FieldError("virtual_services", "virtual service names must be unique")
        listeners: dict[tuple[str, int, str], str] = {}
        for i, vs in enumerate(self.virtual_services):
            for port in vs.ports:
                key = (vs.address, port, vs.protocol)
                if key in listeners:
                    raise FieldError(
                        f"virtual_services[{i}].ports",
                        f"{vs.address}:{port}/{vs.protocol} is already used by {listeners[key]!r}",
                    )
                listeners[key] = vs.name
            refs = (
                [(f"tls.certificates[{j}]", n) for j, n in enumerate(vs.tls.certificates)]
                if vs.tls
                else []
            )
            for j, pool in enumerate(vs.subvs):
                if pool.reencrypt and pool.reencrypt.ca_certificate:
                    refs.append(
                        (f"subvs[{j}].reencrypt.ca_certificate", pool.reencrypt.ca_certificate)
                    )
            if vs.reencrypt and vs.reencrypt.ca_certificate:
                refs.append(("reencrypt.ca_certificate", vs.reencrypt.ca_certificate))
            for field, ref in refs:
                if ref not in cert_names:
                    raise FieldError(
                        f"virtual_services[{i}].{field}", f"no certificate named {ref!r}"
                    )
        return self

    def service(self, name: str) -> VirtualService:
        for vs in self.virtual_services:
            if vs.name == name:
                return vs
        raise KeyError(name)
