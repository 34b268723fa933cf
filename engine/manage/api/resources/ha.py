"""/api/v1/ha: the HA pair's state, its settings, pairing, and the peer-to-peer replication.

The replication endpoints (``/api/v1/ha/sync/...``) take no user login: the peer proves itself
with the pair's shared secret (signed request) and this node signs its answer the same way.
A standby refuses configuration edits with 409 naming the active peer; its own ``ha`` section
and pairing stay writable, since they belong to this appliance alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Response, current_app, request
from pydantic import BaseModel, ConfigDict

from passerelle.engine.ha import signing
from passerelle.engine.ha.node import EXTENSION, HANode, SyncRefused
from passerelle.engine.ha.pairing import JoinRequest, PairError, PairRequest, ask_peer, join, plan
from passerelle.engine.manage.api.auth import SAFE_METHODS, authenticate
from passerelle.engine.manage.api.bodies import body, empty, json_object, parse, reply
from passerelle.engine.manage.api.changes import current, edit, note
from passerelle.engine.manage.api.errors import ApiError
from passerelle.engine.manage.api.spec import Resource
from passerelle.engine.model.errors import ConfigError
from passerelle.engine.model.ha import HASettings

BASE = "/api/v1/ha"

# Resources whose edits change the replicated configuration: a standby refuses them.
REPLICATED = frozenset(
    {"virtual_services", "real_servers", "subvs", "certificates", "config", "templates"}
)

resource = Resource("ha", "HA")

_nonces = signing.NonceCache()
# The API's usual challenge, so that every closed operation answers a stranger alike.
CHALLENGE = 'Basic realm="passerelle", Bearer realm="passerelle"'


class HAStatus(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str  # standalone, starting, active, standby, fault, stopped
    enabled: bool
    node: str | None = None
    peer_address: str | None = None
    peer_api_url: str | None = None
    shared_addresses: list[str] = []
    last_sync_version: int = 0
    settings: dict[str, Any] | None = None


class PairResult(BaseModel):
    state: str
    node: str
    peer_api_url: str
    local_address: str
    interface: str


class SyncHeld(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    synced_version: int


def ha_node() -> HANode | None:
    return current_app.extensions.get(EXTENSION)


def _node() -> HANode:
    node = ha_node()
    if node is None:
        raise ApiError(409, "HA is not available: this API does not run inside the engine")
    return node


def _public_settings(settings: HASettings | None) -> dict[str, Any] | None:
    if settings is None:
        return None
    return settings.model_dump(mode="json", exclude={"auth_secret"})


@resource.blueprint.before_app_request
def refuse_on_standby() -> None:
    if request.method in SAFE_METHODS or request.blueprint not in REPLICATED:
        return
    node = ha_node()
    if node is None or not node.refuses_edits or node.settings is None:
        return
    authenticate()  # strangers learn nothing about the pair: 401 before 409
    peer = node.settings.peer_api_url or node.settings.peer_address
    raise ApiError(
        409,
        f"this appliance is the standby of an HA pair; change the configuration on {peer}",
    )


@resource.route(
    "GET", BASE, "HA role, peer, last replicated version, keepalived", response=HAStatus
)
def get_ha() -> Response:
    _, config = current()
    node = ha_node()
    if node is None:
        status: dict[str, Any] = {"role": "standalone", "enabled": False}
    else:
        status = node.status()
    status["settings"] = _public_settings(config.ha)
    return reply(status)


@resource.route(
    "PUT",
    BASE + "/settings",
    "Replace this appliance's HA settings (auth_secret may be left out to keep it)",
    body=HASettings,
    response=HAStatus,
    errors=(412, 422),
)
def put_settings() -> Response:
    data = json_object()
    _, config = current()
    if "auth_secret" not in data and config.ha is not None:
        data["auth_secret"] = config.ha.auth_secret
    _store_settings("replace HA settings", parse(HASettings, data))
    return get_ha()


@resource.route(
    "DELETE", BASE + "/settings", "Leave the pair: this appliance runs standalone", status=204
)
def delete_settings() -> Response:
    _store_settings("remove HA settings", None)
    return empty()


def _store_settings(action: str, settings: HASettings | None) -> None:
    """Replace this appliance's ``ha`` section (None: standalone)."""

    def store(config_data: dict[str, Any]) -> None:
        config_data["ha"] = settings.model_dump(mode="json") if settings else None

    edit(action, store)


def _paired(node: HANode, action: str, peer_api_url: str, settings: HASettings) -> Response:
    """Store the settings that complete a pairing and start replicating at once."""
    _store_settings(action, settings)
    node.wake()
    return reply(
        {
            "state": "paired",
            "node": settings.node,
            "peer_api_url": peer_api_url,
            "local_address": settings.local_address,
            "interface": settings.interface,
        }
    )


def _pair_error(exc: PairError) -> ApiError:
    return ApiError(exc.status, exc.message, exc.field)


@resource.route(
    "POST",
    BASE + "/pair",
    "Pair with another appliance: this one becomes the primary, the peer its standby",
    body=PairRequest,
    response=PairResult,
    errors=(409, 422),
)
def pair_with_peer() -> Response:
    node = _node()
    wanted = body(PairRequest)
    _, config = current()
    paired = config.ha.peer_api_url if config.ha is not None else None
    if paired and paired.rstrip("/") != wanted.peer_api_url.rstrip("/"):
        raise ApiError(
            409,
            f"already paired with {paired}; DELETE {BASE}/settings first to pair with another",
            "peer_api_url",
        )
    if node.api_port is None:
        raise ApiError(409, "the management listener's port is unknown; pairing needs it")
    try:
        planned = plan(wanted, node.api_port, node.certificate_sha256)
    except PairError as exc:
        raise _pair_error(exc) from None
    # This node's keepalived starts first and so wins the first election: the primary is
    # the active member once paired (nopreempt keeps it so).
    _store_settings(f"pair with {wanted.peer_api_url}", planned.ours)
    node.wait_for_role("active", 4 * planned.ours.advert_interval + 3)
    try:
        settings = ask_peer(wanted, planned)
    except PairError as exc:
        _store_settings("undo a failed pairing", config.ha)
        raise _pair_error(exc) from None
    return _paired(
        node, f"pin the certificate of {wanted.peer_api_url}", wanted.peer_api_url, settings
    )


@resource.route(
    "POST",
    BASE + "/join",
    "Called by the primary while pairing: become its standby",
    body=JoinRequest,
    response=PairResult,
    errors=(409, 422),
)
def join_primary() -> Response:
    node = _node()
    wanted = body(JoinRequest)
    _, config = current()
    if config.ha is not None and config.ha.peer_address != wanted.peer_address:
        raise ApiError(
            409,
            f"already paired with {config.ha.peer_address}; leave that pair first",
            "peer_address",
        )
    try:
        settings = join(wanted)
    except PairError as exc:
        raise _pair_error(exc) from None
    return _paired(node, f"join the pair of {wanted.peer_api_url}", wanted.peer_api_url, settings)


# -- replication between the two nodes ---------------------------------------------------------


def _verified() -> tuple[HANode, str]:
    """The node and the secret, once the request is proven to come from the peer."""
    if signing.SIGNATURE not in request.headers:
        raise ApiError(
            401,
            "only the HA peer calls this, signing with the pair's secret",
            "Authorization",
            headers={"WWW-Authenticate": CHALLENGE},
        )
    node = _node()
    _, config = current()  # the store, not the applied config: a join may be milliseconds old
    if config.ha is None or not config.ha.enabled:
        raise ApiError(409, "this appliance is not part of an HA pair")
    secret = config.ha.auth_secret
    try:
        signing.verify_request(
            secret,
            request.method,
            request.path,
            request.get_data(cache=True),
            request.headers,
            time.time(),
            _nonces,
        )
    except signing.SignatureError as exc:
        raise ApiError(401, str(exc), signing.SIGNATURE) from None
    return node, secret


def _signed(secret: str, payload: dict[str, Any], status: int = 200) -> Response:
    response = reply(payload, status)
    nonce = request.headers.get(signing.NONCE, "")
    response.headers[signing.SIGNATURE] = signing.response_signature(
        secret, nonce, response.status_code, response.get_data()
    )
    return response


def _refused(secret: str, exc: Exception, status: int, field: str = "") -> Response:
    return _signed(secret, {"error": str(exc), "field": field}, status)


class _Refusal(Exception):
    """What a replication call could not take; answered signed, so the peer can trust it."""

    def __init__(self, status: int, message: str, field: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.field = field


def _peer_only(
    method: str, path: str, summary: str, errors: tuple[int, ...]
) -> Callable[[Callable[[HANode], None]], Callable[[], Response]]:
    """Route a replication call: the peer proves itself, and every answer is signed, held
    version or refusal alike (409 when this node is active and keeps its own data)."""

    def register(receive: Callable[[HANode], None]) -> Callable[[], Response]:
        def view() -> Response:
            node, secret = _verified()
            try:
                receive(node)
            except SyncRefused as exc:
                return _refused(secret, exc, 409)
            except _Refusal as exc:
                return _refused(secret, exc, exc.status, exc.field)
            return _signed(secret, node.held())

        view.__name__ = receive.__name__  # the Flask endpoint and the OpenAPI operation
        view.__doc__ = receive.__doc__
        return resource.route(
            method, BASE + path, summary, response=SyncHeld, errors=errors, public=True
        )(view)

    return register


@_peer_only("GET", "/sync", "Peer only: role and replicated version", errors=(401, 409))
def sync_status(node: HANode) -> None:
    """Nothing to take: the answer is the held version."""


@_peer_only(
    "PUT",
    "/sync/config",
    "Peer only: the active's configuration (this node keeps its own ha section)",
    errors=(401, 409, 422),
)
def sync_config(node: HANode) -> None:
    data = json_object()
    config, version, source = data.get("config"), data.get("version"), data.get("source_node")
    if not isinstance(config, dict) or not isinstance(version, int) or source not in ("a", "b"):
        raise _Refusal(422, "expected config, version and source_node")
    try:
        node.receive_config(source, version, config)
    except ConfigError as exc:
        raise _Refusal(422, str(exc), exc.field) from None
    note(f"replicated configuration v{version} from node {source}")


@_peer_only(
    "PUT",
    "/sync/persistence",
    "Peer only: the active's persistence entries",
    errors=(401, 409, 422),
)
def sync_persistence(node: HANode) -> None:
    entries = json_object().get("entries")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise _Refusal(422, "expected entries: a list of objects", "entries")
    try:
        node.receive_persistence(entries)
    except (KeyError, TypeError, ValueError) as exc:
        raise _Refusal(422, f"bad persistence entry: {exc}", "entries") from None
