"""A configuration snapshot turned into what a worker's connection handlers need.

The TLS contexts module is imported only for a configuration with TLS: it brings in the X.509
half of ``cryptography`` (a few MB of modules), which the supervisor, that only needs
``slot_keys``, never uses.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from passerelle.engine.http.rules import ContentSwitch
from passerelle.engine.runtime.pools import (
    PersistenceAuthority,
    PoolRoute,
    PoolRuntime,
    pool_id,
    server_slot_key,
)
from passerelle.engine.stats.counters import CounterTable

if TYPE_CHECKING:  # a worker reads the plain copy (runtime/snapshot.py), never pydantic
    from passerelle.engine.model.config import Config, Pool, VirtualService

ListenerKey = tuple[str, int, str]  # (address, port, protocol)


def vs_slot_key(vs_name: str) -> str:
    return f"vs:{vs_name}"


def subvs_slot_key(pool: str) -> str:
    return f"subvs:{pool}"


@dataclass(eq=False)
class ServiceRuntime:
    model: VirtualService
    slot: int
    tls_server: ssl.SSLContext | None
    routes: dict[str | None, PoolRoute] = field(default_factory=dict)
    switch: ContentSwitch | None = None
    # Set when a newer snapshot replaced this one: connections look for their service again.
    superseded: bool = False

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def default_route(self) -> PoolRoute:
        return self.routes[None]


def build_services(
    config: Config,
    slots: Callable[[str], int],
    table: CounterTable,
    authority: PersistenceAuthority,
) -> dict[ListenerKey, ServiceRuntime]:
    certificates = {c.name: c for c in config.certificates}
    listeners: dict[ListenerKey, ServiceRuntime] = {}

    def route(vs: VirtualService, model: Pool, subvs: str | None) -> PoolRoute:
        ident = pool_id(vs.name, subvs)
        reencrypt = model.reencrypt if model.reencrypt and model.reencrypt.enabled else None
        tls_client = None
        if reencrypt:
            from passerelle.engine.tls.contexts import client_context

            tls_client = client_context(reencrypt, certificates)
        return PoolRoute(
            pool=PoolRuntime(ident, model, slots, table, authority),
            name=subvs,
            slot=slots(subvs_slot_key(ident)) if subvs else slots(vs_slot_key(vs.name)),
            tls_client=tls_client,
            reencrypt=reencrypt,
        )

    for vs in config.virtual_services:
        if not vs.enabled:
            continue
        tls_server = None
        if vs.tls:
            from passerelle.engine.tls.contexts import server_context

            tls_server = server_context(
                vs.tls, certificates, record_server_name=_reads_server_name(vs)
            )
        service = ServiceRuntime(model=vs, slot=slots(vs_slot_key(vs.name)), tls_server=tls_server)
        service.routes[None] = route(vs, vs, None)
        if vs.subvs:
            service.switch = ContentSwitch(vs)
            for sub in vs.subvs:
                service.routes[sub.name] = route(vs, sub, sub.name)
        for port in vs.ports:
            listeners[(vs.address, port, vs.protocol)] = service
    return listeners


def slot_keys(config: Config) -> list[str]:
    """Every statistics slot a configuration needs, in a stable order."""
    keys: list[str] = []
    for vs in config.virtual_services:
        keys.append(vs_slot_key(vs.name))
        for server in vs.real_servers:
            keys.append(server_slot_key(pool_id(vs.name), server.key))
        for sub in vs.subvs:
            ident = pool_id(vs.name, sub.name)
            keys.append(subvs_slot_key(ident))
            for server in sub.real_servers:
                keys.append(server_slot_key(ident, server.key))
    return keys


def _reads_server_name(vs: VirtualService) -> bool:
    """Whether the service uses the name a TLS client asked for beyond choosing a certificate:
    in SubVS rules, or (L4) passed on to re-encrypted servers."""
    if vs.mode == "http":
        return any(rule.sni for sub in vs.subvs for rule in sub.rules)
    return any(
        pool.reencrypt is not None and pool.reencrypt.enabled and pool.reencrypt.sni == "host"
        for pool in (vs, *vs.subvs)
    )
