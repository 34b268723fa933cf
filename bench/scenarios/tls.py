"""TLS offload (keep-alive request rate; proxy CPU per full handshake for RSA-2048 and ECDSA
P-256) and re-encryption to TLS back ends.

New handshakes per second are not measured by how many a client manages: the client's own
handshake work caps that on a small machine. What is compared is the proxy's CPU time per full
handshake (``bench.handshake_client`` never resumes a session and lets every server finish the
handshake and send its tickets), turned into handshakes per second per proxy core =
1e6 / (µs per handshake)."""

from __future__ import annotations

from bench.backends import BackEnds
from bench.handshake_client import negotiated_version
from bench.load import full_handshakes
from bench.net import LOOPBACK
from bench.scenarios.common import Rig, Row, guarded, proxy_cpu
from bench.scenarios.throughput import rate_rows
from bench.services import Certificate, Service

KEY_TYPES = {"rsa": "RSA-2048", "ecdsa": "ECDSA P-256"}
# Every product must speak the same protocol for its figures to compare.
EXPECTED_VERSION = "TLSv1.3"


def offload_services(backends: BackEnds, certificates: dict[str, Certificate]) -> list[Service]:
    return [
        Service(f"tls-{kind}", "http", backends.pool, offload=certificates[kind])
        for kind in KEY_TYPES
    ]


def reencrypt_services(backends: BackEnds, certificates: dict[str, Certificate]) -> list[Service]:
    return [
        Service("reencrypt", "http", backends.tls, offload=certificates["ecdsa"], reencrypt=True)
    ]


def measure_offload(rig: Rig) -> list[Row]:
    rows = rate_rows(
        rig,
        "tls",
        "tls-ecdsa",
        connections=rig.settings.connections[:1],
        scheme="https",
        label="ECDSA keep-alive ",
    )
    rows += rate_rows(
        rig,
        "tls",
        "tls-ecdsa",
        connections=rig.settings.connections[:1],
        scheme="https",
        headers=("Connection: close",),
        label="ECDSA new connection per request (resumed) ",
    )
    for kind, title in KEY_TYPES.items():
        cost = Row("tls", f"{title} proxy CPU µs/full handshake", False)
        per_core = Row("tls", f"{title} full handshakes/s per proxy core", True)
        reached = Row("tls", f"{title} full handshakes/s reached (client-bound)", None)
        for proxy in rig.proxies:
            with guarded(cost, proxy.product):
                version = negotiated_version(LOOPBACK, proxy.port(f"tls-{kind}"))
                if version != EXPECTED_VERSION:
                    cost.note(proxy.product, f"negotiated {version}, not {EXPECTED_VERSION}")
        for _, proxy in rig.rounds():
            with guarded(cost, proxy.product):
                before = proxy_cpu(proxy)
                done = full_handshakes(
                    proxy.port(f"tls-{kind}"), rig.settings.duration, rig.placement.load_cpus
                )
                cpu = proxy_cpu(proxy) - before
                if done.with_ticket < done.count:
                    cost.note(
                        proxy.product,
                        f"{done.count - done.with_ticket} of {done.count} handshakes "
                        "ended without a session ticket",
                    )
                count = done.count
                micros = cpu / max(1, count) * 1e6
                cost.add(proxy.product, micros)
                per_core.add(proxy.product, 1e6 / micros if micros else 0.0)
                reached.add(proxy.product, count / max(1, round(rig.settings.duration)))
        rows += [cost, per_core, reached]
    return rows


def measure_reencrypt(rig: Rig) -> list[Row]:
    return rate_rows(
        rig,
        "reencrypt",
        "reencrypt",
        connections=rig.settings.connections[:1],
        scheme="https",
        label="TLS in, TLS out, ",
    )
