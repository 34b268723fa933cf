"""Skype for Business compliance advisor: which of Microsoft's load-balancing requirements a
virtual service meets or breaks (SFB-REFERENCE.md, "Requirements").

A virtual service is read in one of two roles. The *reverse proxy* (external web services) is an
L7 service that offloads TLS or switches on Host and forwards to the pool's external ports
(4443, 8080). The *internal pool* (the hardware load balancer of a front-end or Director pool)
carries the web services ports 443, 80 and 4443 to the servers themselves. Each finding names
the configuration field to change.

Ports are the well-known ones; a layout that shifts them all by one offset (the demo puts 443 on
10443 so that nothing needs root) sets ``PASSERELLE_SFB_PORT_OFFSET``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from passerelle.engine.model.config import Config, Pool, SubVS, VirtualService

PORT_OFFSET_ENV = "PASSERELLE_SFB_PORT_OFFSET"
IDLE_TIMEOUT = 1800.0
WSMAN_COOKIE = "MS-WSMAN"
# First labels of the names Skype for Business publishes for its web services.
SKYPE_LABELS = frozenset(
    {"lyncdiscover", "lyncdiscoverinternal", "webext", "meet", "dialin", "scheduler"}
)
OFFICE_ONLINE_LABELS = frozenset({"owa", "oos", "officeonline", "office", "wac"})
OFFICE_ONLINE_DISCOVERY = "/hosting/discovery"

MET, BROKEN, NOT_APPLICABLE = "met", "broken", "not-applicable"

IDLE = "TCP idle timeout 1800 s"
HEALTH = "Health monitor on port 5061 (internal pool)"
PERSISTENCE = "Source-address persistence for internal web services (none required external)"
HOST = "Host header passed through unchanged"
COOKIE = "Cookie persistence only for Lync 2010 pools (MS-WSMAN, not httpOnly, no expiry)"
MOBILE = "Per-request balancing for mobile clients (L7)"
NTLM = "NTLM/Negotiate: a server connection is never reused for another client"
REENCRYPT = "Re-encryption of external web services (443 to the pool's 4443)"
OFFICE_ONLINE = "Office Online Server: L7 routing, client affinity, SSL offload"
REQUIREMENTS = (IDLE, HEALTH, PERSISTENCE, HOST, COOKIE, MOBILE, NTLM, REENCRYPT, OFFICE_ONLINE)


@dataclass(frozen=True)
class Finding:
    requirement: str
    status: str  # "met" | "broken" | "not-applicable"
    detail: str
    field: str | None  # the configuration field to fix, e.g. "virtual_services[2].idle_timeout"


@dataclass(frozen=True)
class SkypePorts:
    https: int = 443
    http: int = 80
    https_external: int = 4443
    http_external: int = 8080
    sip_tls: int = 5061

    def shifted(self, offset: int) -> SkypePorts:
        return replace(
            self,
            https=self.https + offset,
            http=self.http + offset,
            https_external=self.https_external + offset,
            http_external=self.http_external + offset,
            sip_tls=self.sip_tls + offset,
        )

    @property
    def web(self) -> frozenset[int]:
        return frozenset({self.https, self.http, self.https_external, self.http_external})


def standard_ports() -> SkypePorts:
    text = os.environ.get(PORT_OFFSET_ENV, "").strip()
    offset = int(text) if text.isdigit() and int(text) < 60000 else 0
    return SkypePorts().shifted(offset)


def _label(host: str) -> str:
    return host.lower().removeprefix("*.").split(".", 1)[0]


def _hosts(sub: SubVS) -> list[str]:
    return [h for rule in sub.rules for h in (*rule.host, *rule.sni)]


def _skype_subvs(sub: SubVS, ports: SkypePorts) -> bool:
    """A SubVS that carries the pool's external web services (not Office Online)."""
    if any(_label(h) in SKYPE_LABELS for h in _hosts(sub)):
        return True
    external = {ports.https_external, ports.http_external}
    return bool(sub.real_servers) and all(s.port in external for s in sub.real_servers)


def _office_online_subvs(sub: SubVS, ports: SkypePorts) -> bool:
    if _skype_subvs(sub, ports):
        return False
    return sub.health_check.path.startswith(OFFICE_ONLINE_DISCOVERY) or any(
        _label(h) in OFFICE_ONLINE_LABELS for h in _hosts(sub)
    )


def carries_skype(vs: VirtualService, ports: SkypePorts | None = None) -> bool:
    """Whether ``vs`` looks like Skype for Business web services, by its shape alone.

    Host rules for lyncdiscover/webext/meet/dialin; web services ports (443/80/4443/8080) with
    front-end health checks on 5061; or an L7 service forwarding to the pool's 4443/8080.
    """
    ports = ports or standard_ports()
    if any(_skype_subvs(sub, ports) for sub in vs.subvs):
        return True
    pools: list[Pool] = [vs, *vs.subvs]
    on_web_ports = bool(set(vs.ports) & ports.web) or any(
        s.port in ports.web for pool in pools for s in pool.real_servers
    )
    if on_web_ports and any(pool.health_check.port == ports.sip_tls for pool in pools):
        return True
    return ports.https_external in vs.ports and any(
        s.port == ports.https_external for s in vs.real_servers
    )


def skype_services(config: Config, ports: SkypePorts | None = None) -> list[str]:
    """Names of the virtual services that carry Skype for Business.

    Besides ``carries_skype``: the services a Skype reverse proxy forwards to (its SubVS's
    real server is their VIP), and the services on the same VIP with the same servers as one
    already found, so that a pool whose health check went wrong is still assessed.
    """
    ports = ports or standard_ports()
    found = [vs for vs in config.virtual_services if carries_skype(vs, ports)]
    targets = {
        (server.address, server.port)
        for vs in found
        for sub in vs.subvs
        if _skype_subvs(sub, ports)
        for server in sub.real_servers
    }
    for vs in config.virtual_services:
        if vs not in found and any((vs.address, port) in targets for port in vs.ports):
            found.append(vs)
    pools = {(vs.address, frozenset(s.address for s in vs.real_servers)) for vs in found}
    for vs in config.virtual_services:
        servers = frozenset(s.address for s in vs.real_servers)
        if vs not in found and servers and (vs.address, servers) in pools:
            found.append(vs)
    names = {vs.name for vs in found}
    return [vs.name for vs in config.virtual_services if vs.name in names]


def is_reverse_proxy(vs: VirtualService, ports: SkypePorts | None = None) -> bool:
    ports = ports or standard_ports()
    if vs.mode != "http":
        return False
    external = {ports.https_external, ports.http_external}
    return vs.tls is not None or bool(vs.subvs) or any(s.port in external for s in vs.real_servers)


def assess(config: Config, vs_name: str, ports: SkypePorts | None = None) -> list[Finding]:
    """Every requirement with its status for virtual service ``vs_name`` (KeyError if none)."""
    ports = ports or standard_ports()
    vs = config.service(vs_name)
    where = f"virtual_services[{config.virtual_services.index(vs)}]"
    check = (
        _ReverseProxy(vs, where, ports) if is_reverse_proxy(vs, ports) else _Pool(vs, where, ports)
    )
    return check.findings()


class _Assessment:
    def __init__(self, vs: VirtualService, where: str, ports: SkypePorts) -> None:
        self.vs, self.where, self.ports = vs, where, ports

    def findings(self) -> list[Finding]:
        return [
            self.idle(),
            self.health(),
            self.persistence(),
            self.host(),
            self.cookie(),
            self.mobile(),
            self.ntlm(),
            self.reencrypt(),
            *self.office_online(),
        ]

    def front_end_pools(self) -> list[tuple[str, Pool]]:
        return [(self.where, self.vs)]

    def idle(self) -> Finding:
        seconds = self.vs.idle_timeout
        if seconds >= IDLE_TIMEOUT:
            return Finding(IDLE, MET, f"idle timeout is {seconds:g} s", None)
        return Finding(
            IDLE,
            BROKEN,
            f"idle timeout is {seconds:g} s; Skype for Business web services need "
            f"{IDLE_TIMEOUT:g} s or long-polling requests are cut",
            f"{self.where}.idle_timeout",
        )

    def health(self) -> Finding:
        raise NotImplementedError

    def persistence(self) -> Finding:
        raise NotImplementedError

    def host(self) -> Finding:
        if self.vs.mode != "http":
            return Finding(HOST, NOT_APPLICABLE, "L4 relays bytes; headers are not touched", None)
        headers = self.vs.headers
        if any(name.lower() == "host" for name in headers.request_remove):
            return Finding(
                HOST,
                BROKEN,
                "the Host header is removed; the front ends need the name the client asked for",
                f"{self.where}.headers.request_remove",
            )
        if any(name.lower() == "host" for name in headers.request_add):
            return Finding(
                HOST,
                BROKEN,
                "the Host header is rewritten; the front ends need the name the client asked for",
                f"{self.where}.headers.request_add",
            )
        return Finding(HOST, MET, "the client's Host header reaches the servers unchanged", None)

    def cookie(self) -> Finding:
        for where, pool in self.front_end_pools():
            persistence = pool.persistence
            if persistence.mode == "server_cookie":
                return Finding(
                    COOKIE,
                    BROKEN,
                    "front ends set no affinity cookie to learn; use source-address "
                    "persistence, or an MS-WSMAN active cookie for a Lync 2010 pool",
                    f"{where}.persistence.mode",
                )
            if persistence.mode != "active_cookie":
                continue
            if persistence.cookie_style != "ms-wsman":
                return Finding(
                    COOKIE,
                    BROKEN,
                    "a Lync 2010 pool's cookie must follow Microsoft's rules (not httpOnly, no "
                    "expiry, set on every response that came without it): cookie_style ms-wsman",
                    f"{where}.persistence.cookie_style",
                )
            if persistence.cookie_name != WSMAN_COOKIE:
                return Finding(
                    COOKIE,
                    BROKEN,
                    f"the cookie is named {persistence.cookie_name!r}; Lync expects "
                    f"{WSMAN_COOKIE!r}",
                    f"{where}.persistence.cookie_name",
                )
            return Finding(COOKIE, MET, "MS-WSMAN cookie, as Lync 2010 pools need", None)
        return Finding(
            COOKIE,
            NOT_APPLICABLE,
            "no cookie persistence (only Lync 2010 pools need one, named MS-WSMAN)",
            None,
        )

    def mobile(self) -> Finding:
        if self.vs.mode == "http":
            return Finding(
                MOBILE,
                MET,
                "L7: every request is routed on its own, also inside one client connection",
                None,
            )
        return Finding(
            MOBILE,
            NOT_APPLICABLE,
            "L4 relays each client connection whole to one front end; mobile clients from "
            "outside are balanced per request by the reverse proxy (L7)",
            None,
        )

    def ntlm(self) -> Finding:
        if self.vs.mode != "http":
            detail = "L4: each client connection has its own server connection"
        else:
            detail = (
                "built into the engine, nothing to configure: a server connection that carried "
                "NTLM/Negotiate stays pinned to its client connection and is never pooled"
            )
        return Finding(NTLM, MET, detail, None)

    def reencrypt(self) -> Finding:
        raise NotImplementedError

    def office_online(self) -> list[Finding]:
        return []


class _Pool(_Assessment):
    """The internal load balancer of a front-end or Director pool."""

    def front_end_pools(self) -> list[tuple[str, Pool]]:
        subs = [(f"{self.where}.subvs[{j}]", sub) for j, sub in enumerate(self.vs.subvs)]
        return subs or [(self.where, self.vs)]

    def health(self) -> Finding:
        for where, pool in self.front_end_pools():
            check = pool.health_check
            if check.type == "none":
                return Finding(
                    HEALTH,
                    BROKEN,
                    f"no health check; Microsoft's guidance is TCP {self.ports.sip_tls} "
                    "on each front end",
                    f"{where}.health_check.type",
                )
            if check.port != self.ports.sip_tls:
                used = check.port or "the service port"
                return Finding(
                    HEALTH,
                    BROKEN,
                    f"health checks use {used}; a front end is up when it answers SIP over "
                    f"TLS on {self.ports.sip_tls}",
                    f"{where}.health_check.port",
                )
        return Finding(
            HEALTH, MET, f"{check.type.upper()} check on port {self.ports.sip_tls}", None
        )

    def persistence(self) -> Finding:
        for where, pool in self.front_end_pools():
            mode = pool.persistence.mode
            if mode == "active_cookie" and pool.persistence.cookie_style == "ms-wsman":
                continue  # the Lync 2010 case, judged by the cookie requirement
            if mode != "source_ip":
                return Finding(
                    PERSISTENCE,
                    BROKEN,
                    f"persistence is {mode!r}; internal web services need source-address "
                    "persistence",
                    f"{where}.persistence.mode",
                )
        return Finding(PERSISTENCE, MET, "source-address persistence", None)

    def reencrypt(self) -> Finding:
        return Finding(
            REENCRYPT,
            NOT_APPLICABLE,
            "internal pool: re-encryption is the reverse proxy's job"
            + ("; TLS passes through to the servers (L4)" if self.vs.mode == "l4" else ""),
            None,
        )


class _ReverseProxy(_Assessment):
    """The edge reverse proxy that publishes the external web services."""

    def front_end_pools(self) -> list[tuple[str, Pool]]:
        if not self.vs.subvs:
            return [(self.where, self.vs)]
        return [
            (f"{self.where}.subvs[{j}]", sub)
            for j, sub in enumerate(self.vs.subvs)
            if _skype_subvs(sub, self.ports)
        ]

    def health(self) -> Finding:
        return Finding(
            HEALTH,
            NOT_APPLICABLE,
            f"reverse proxy: the port {self.ports.sip_tls} check belongs on the internal pool",
            None,
        )

    def persistence(self) -> Finding:
        return Finding(
            PERSISTENCE,
            NOT_APPLICABLE,
            "external web services need no persistence (none or source address both work)",
            None,
        )

    def reencrypt(self) -> Finding:
        pools = [
            (where, pool)
            for where, pool in self.front_end_pools()
            if pool.real_servers
            and all(s.port != self.ports.http_external for s in pool.real_servers)
        ]
        if not pools:
            return Finding(
                REENCRYPT,
                NOT_APPLICABLE,
                f"plain HTTP to the front ends' {self.ports.http_external}",
                None,
            )
        if self.vs.tls is None:
            return Finding(
                REENCRYPT,
                BROKEN,
                "the reverse proxy must offload TLS with the public certificate",
                f"{self.where}.tls",
            )
        for where, pool in pools:
            if pool.reencrypt is None or not pool.reencrypt.enabled:
                return Finding(
                    REENCRYPT,
                    BROKEN,
                    "requests go to the pool in clear; the external web services port expects TLS",
                    f"{where}.reencrypt",
                )
            for k, server in enumerate(pool.real_servers):
                if server.port != self.ports.https_external:
                    return Finding(
                        REENCRYPT,
                        BROKEN,
                        f"forwards to port {server.port}; external web services listen on "
                        f"{self.ports.https_external} ({self.ports.https} is internal)",
                        f"{where}.real_servers[{k}].port",
                    )
        return Finding(
            REENCRYPT,
            MET,
            f"TLS offloaded, re-encrypted to port {self.ports.https_external}",
            None,
        )

    def office_online(self) -> list[Finding]:
        findings = []
        for j, sub in enumerate(self.vs.subvs):
            if not _office_online_subvs(sub, self.ports):
                continue
            where = f"{self.where}.subvs[{j}]"
            if sub.persistence.mode == "none":
                findings.append(
                    Finding(
                        OFFICE_ONLINE,
                        BROKEN,
                        f"SubVS {sub.name}: no client affinity; use a cookie or source address",
                        f"{where}.persistence.mode",
                    )
                )
            elif self.vs.tls is None:
                findings.append(
                    Finding(
                        OFFICE_ONLINE,
                        BROKEN,
                        f"SubVS {sub.name}: no SSL offload",
                        f"{self.where}.tls",
                    )
                )
            else:
                findings.append(
                    Finding(
                        OFFICE_ONLINE,
                        MET,
                        f"SubVS {sub.name}: L7, {sub.persistence.mode} affinity, SSL offload",
                        None,
                    )
                )
        return findings
