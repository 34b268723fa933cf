"""The engine's admin listener: Prometheus metrics, JSON statistics and status.

Bound to a management address only (loopback by default), never to a virtual service address.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from gevent.pywsgi import WSGIServer

from passerelle.engine import compiled
from passerelle.engine.runtime.supervisor import Supervisor
from passerelle.engine.stats.report import collect, prometheus

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class AdminApp:
    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def stats(self) -> list[dict[str, Any]]:
        s = self.supervisor
        return collect(s.config, s.table, s.slots.slots, s.health_detail)

    def status(self) -> dict[str, Any]:
        s = self.supervisor
        return {
            "version": s.version,
            "uptime": round(time.time() - s.started, 1),
            "workers": [
                {
                    "index": w.index,
                    "pid": w.process.pid if w.process else None,
                    "version": w.version,
                    "errors": w.errors,
                }
                for w in s.workers
            ],
            "persistence_entries": len(s.persistence),
            "request_path": compiled.describe(),
        }

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            body = prometheus(self.stats(), self.supervisor.version).encode()
            content_type = "text/plain; version=0.0.4; charset=utf-8"
        elif path == "/stats":
            body, content_type = json.dumps(self.stats()).encode(), "application/json"
        elif path == "/status":
            body, content_type = json.dumps(self.status()).encode(), "application/json"
        elif path == "/healthz":
            body, content_type = b"ok\n", "text/plain"
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        start_response("200 OK", [("Content-Type", content_type), ("Cache-Control", "no-store")])
        return [body]


def serve_admin(supervisor: Supervisor, address: str, port: int) -> WSGIServer:
    server = WSGIServer((address, port), AdminApp(supervisor), log=None)
    server.start()
    return server
