"""One appliance's side of an HA pair, inside ``passerelle engine``.

It follows the applied configuration (keepalived started, reloaded or stopped to match the
``ha`` section), watches the role file that keepalived's notify writes, and, while active,
replicates to the peer: the configuration on every new version and whenever the peer reports
another one (checked every ``sync_interval``), and the persistence table every
``sync_interval``. The peer's answers carry its role and the version it holds, so one call
does both the persistence push and the reconciliation.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event

from passerelle.engine.ha.keepalived import (
    Commands,
    KeepalivedProcess,
    render,
    shared_addresses,
    write_helper,
)
from passerelle.engine.ha.peer import PeerClient, PeerError, fingerprint_of_pem
from passerelle.engine.ha.state import (
    STANDALONE,
    clear_state,
    read_role,
    write_state,
)
from passerelle.engine.manage.store import ConfigStore, canonical_json, digest_of
from passerelle.engine.model.config import Config
from passerelle.engine.model.errors import validate_config
from passerelle.engine.model.ha import HASettings
from passerelle.engine.runtime.supervisor import Supervisor

log = logging.getLogger("passerelle.ha")

EXTENSION = "passerelle-ha"  # where the management API finds the node (Flask extensions)
ROLE_POLL = 0.1
SYNC_PATH = "/ha/sync"


class SyncRefused(Exception):
    """This node will not take the peer's configuration or persistence (it is active)."""


def replicated_digest(config: Config) -> str:
    """Digest of what replication copies: everything but the ``ha`` section."""
    return digest_of(canonical_json(config.model_copy(update={"ha": None})))


def replicated_data(config: Config) -> dict[str, Any]:
    data = config.model_dump(mode="json")
    data.pop("ha", None)
    return data


@dataclass
class SyncRecord:
    node: str | None = None  # whose version numbers ``version`` counts in
    version: int = 0
    digest: str | None = None
    at: float | None = None  # unix time of the last success
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "version": self.version,
            "at": self.at,
            "error": self.error,
        }


@dataclass
class PeerView:
    role: str | None = None
    reachable: bool = False
    checked: float | None = None
    error: str | None = None
    seen: dict[str, Any] = field(default_factory=dict)


class HANode:
    def __init__(
        self,
        store: ConfigStore,
        supervisor: Supervisor,
        *,
        state_file: Path,
        run_dir: Path,
        api_port: int | None,
        certificate: Path | None = None,
        check_url: str | None = None,
        keepalived: str = "keepalived",
    ) -> None:
        self.store = store
        self.supervisor = supervisor
        self.state_file = state_file
        self.api_port = api_port
        self.certificate = certificate
        self.run_dir = run_dir
        self.check_url = check_url
        self.keepalived = KeepalivedProcess(run_dir, keepalived)
        self.settings: HASettings | None = None
        self.role = STANDALONE
        self.addresses: list[str] = []
        self.incoming = SyncRecord()  # what the peer last replicated here
        self.outgoing = SyncRecord()  # what the peer last confirmed holding from us
        self.peer = PeerView()
        self._client: PeerClient | None = None
        self._wake = Event()
        self._greenlets: list[gevent.Greenlet] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._greenlets = [gevent.spawn(self._watch_role), gevent.spawn(self._replicate)]

    def stop(self) -> None:
        for greenlet in self._greenlets:
            greenlet.kill()
        running = self.keepalived.running
        self.keepalived.stop()
        if running:  # notify_stop may not have had time to run
            self._record("stopped")

    @property
    def certificate_sha256(self) -> str | None:
        if self.certificate is None:
            return None
        return fingerprint_of_pem(self.certificate.read_text(encoding="ascii"))

    # -- following the configuration -----------------------------------------------------------

    def config_applied(self, version: int) -> None:
        """Supervisor callback: a configuration is live; bring keepalived in line with it."""
        config = self.supervisor.config
        settings = config.ha if config.ha is not None and config.ha.enabled else None
        previous, self.settings = self.settings, settings
        if settings is None:
            if previous is not None or self.state_file.exists():
                log.info("HA is off: stopping keepalived; the appliance runs standalone")
            self.keepalived.stop()
            self._client = None
            self._record(None)
            self.role = STANDALONE
            return
        if previous is None:
            # Whatever an earlier run left there is stale until keepalived reports.
            self._record("starting")
        self.addresses = shared_addresses(settings, config)
        try:
            commands = Commands(self.state_file, self.check_url, write_helper(self.run_dir))
            self.keepalived.configure(render(settings, self.addresses, commands))
        except OSError as exc:
            self.keepalived.error = f"cannot write {self.keepalived.config_file}: {exc}"
            log.error("%s", self.keepalived.error)
        if self.keepalived.error:
            self._record("fault")
        self._client = (
            PeerClient(
                settings.peer_api_url,
                settings.auth_secret,
                settings.node,
                settings.peer_certificate_sha256,
            )
            if settings.peer_api_url
            else None
        )
        self._wake.set()

    def _record(self, role: str | None) -> None:
        """Write (or, for None, remove) the role file; a failure must not stop a reload."""
        try:
            if role is None:
                if self.state_file.exists():
                    clear_state(self.state_file)
            else:
                peer = self.settings.peer_address if self.settings else None
                write_state(self.state_file, role, peer)
        except OSError as exc:
            log.error("HA role file %s: %s", self.state_file, exc)

    def _watch_role(self) -> None:
        seen: tuple[int, int] | None = None
        while True:
            try:
                stat = self.state_file.stat()
                mark: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_ino)
            except FileNotFoundError:
                mark = None
            if mark != seen:
                seen = mark
                role = read_role(self.state_file) if self.settings is not None else STANDALONE
                if role != self.role:
                    log.warning("HA role: %s (was %s)", role, self.role)
                    self.role = role
                    if role == "active":
                        self._wake.set()
            gevent.sleep(ROLE_POLL)

    def wait_for_role(self, role: str, timeout: float) -> bool:
        """Wait (cooperatively) until keepalived reports ``role``; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.settings is not None and read_role(self.state_file) == role:
                return True
            gevent.sleep(ROLE_POLL)
        return False

    @property
    def refuses_edits(self) -> bool:
        """A standby takes its configuration from the active only."""
        return self.settings is not None and self.role == "standby"

    # -- replication, active side ------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def _replicate(self) -> None:
        while True:
            interval = self.settings.sync_interval if self.settings else 1.0
            self._wake.wait(timeout=interval)
            self._wake.clear()
            client = self._client
            if self.role != "active" or client is None or self.settings is None:
                continue
            try:
                self._push(client, self.settings.node)
            except PeerError as exc:
                if self.peer.error != str(exc):
                    log.warning("HA peer %s: %s", client.api_url, exc)
                self.peer = PeerView(
                    role=self.peer.role, reachable=False, checked=time.time(), error=str(exc)
                )
                self.outgoing.error = str(exc)

    def _push(self, client: PeerClient, node: str) -> None:
        entries = self.supervisor.persistence.dump(time.monotonic())
        answer = client.request("PUT", SYNC_PATH + "/persistence", {"entries": entries})
        self._saw_peer(answer.status, answer.body)
        version, config = self.store.current()
        number = version.number if version else 0
        digest = replicated_digest(config)
        held = answer.body if isinstance(answer.body, dict) else {}
        current = (held.get("source_node"), held.get("synced_version"), held.get("digest"))
        if current == (node, number, digest):
            return
        payload = {"source_node": node, "version": number, "config": replicated_data(config)}
        answer = client.request("PUT", SYNC_PATH + "/config", payload)
        self._saw_peer(answer.status, answer.body)
        log.info("configuration version %d replicated to the peer", number)
        self.outgoing = SyncRecord(node, number, digest, time.time())

    def _saw_peer(self, status: int, body: Any) -> None:
        held = body if isinstance(body, dict) else {}
        if status != 200:
            raise PeerError(f"HTTP {status}: {held.get('error') or body}")
        self.peer = PeerView(role=held.get("role"), reachable=True, checked=time.time(), seen=held)
        self.outgoing.error = None

    # -- replication, standby side -----------------------------------------------------------

    def held(self) -> dict[str, Any]:
        """What this node tells the active: its role and the version it holds."""
        _, config = self.store.current()
        return {
            "role": self.role,
            "source_node": self.incoming.node,
            "synced_version": self.incoming.version,
            "digest": replicated_digest(config),
        }

    def receive_config(self, source_node: str, version: int, data: dict[str, Any]) -> None:
        """Store the active's configuration, keeping this appliance's own ``ha`` section."""
        if self.role == "active":
            raise SyncRefused("this appliance is active; it does not take the peer's configuration")
        _, current = self.store.current()
        merged = dict(data)
        merged["ha"] = current.ha.model_dump(mode="json") if current.ha else None
        config = validate_config(merged)
        self.store.apply_if_changed(
            config, author="ha-sync", comment=f"replicated from node {source_node} v{version}"
        )
        self.incoming = SyncRecord(source_node, version, replicated_digest(config), time.time())

    def receive_persistence(self, entries: list[dict[str, Any]]) -> int:
        if self.role == "active":
            raise SyncRefused("this appliance is active; it keeps its own persistence table")
        self.supervisor.persistence.load(entries, time.monotonic())
        return len(entries)

    # -- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        settings = self.settings
        last = self.incoming if self.role != "active" else self.outgoing
        return {
            "role": self.role,
            "enabled": settings is not None,
            "node": settings.node if settings else None,
            "peer_address": settings.peer_address if settings else None,
            "peer_api_url": settings.peer_api_url if settings else None,
            "shared_addresses": list(self.addresses) if settings else [],
            "last_sync_version": last.version,
            "last_sync_at": last.at,
            "peer": {
                "role": self.peer.role,
                "reachable": self.peer.reachable,
                "checked": self.peer.checked,
                "error": self.peer.error,
            },
            "sync": {"incoming": self.incoming.as_json(), "outgoing": self.outgoing.as_json()},
            "keepalived": {
                "running": self.keepalived.running,
                "pid": self.keepalived.pid,
                "error": self.keepalived.error,
                "config_file": str(self.keepalived.config_file),
            },
            "state_file": str(self.state_file),
        }
