"""Pairing two appliances: the primary is asked (POST /api/v1/ha/pair) and calls the peer.

The admin credentials of the peer, given once, are what establishes trust: over that call the
primary hands the peer a fresh shared secret and its certificate fingerprint, and pins the
certificate the peer presented. From then on each side authenticates the other with the
secret (signed requests and signed answers) and the pinned certificates.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

from passerelle.engine.ha import addresses, peer
from passerelle.engine.model.ha import HASettings, SharedAddress

JOIN_PATH = "/ha/join"
JOIN_TIMEOUT = 15.0


class PairError(Exception):
    def __init__(self, status: int, message: str, field: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


class _Shared(BaseModel):
    """Settings both nodes must agree on."""

    model_config = ConfigDict(extra="forbid")

    virtual_router_id: Annotated[int, Field(ge=1, le=255)] = 51
    advert_interval: Annotated[float, Field(ge=0.01, le=255)] = 1.0
    shared_addresses: list[SharedAddress] = Field(default_factory=list)
    preempt: bool = False
    check_interval: Annotated[float, Field(gt=0, le=3600)] = 1.0
    sync_interval: Annotated[float, Field(gt=0, le=3600)] = 1.0


class PairRequest(_Shared):
    """What the deployment tooling and the web UI send to the primary."""

    peer_api_url: str = Field(
        validation_alias=AliasChoices("peer_api_url", "peer_url"),
        description="the peer's management API, e.g. https://10.0.0.12/api/v1",
    )
    peer_username: str = "admin"
    peer_password: str | None = None
    peer_token: str | None = None  # an API token of the peer, instead of a password
    role: Literal["primary"] = "primary"  # this appliance; the peer becomes the secondary
    # Found from the routing table and the interfaces when not given:
    local_address: str | None = None
    peer_address: str | None = None
    interface: str | None = None

    @model_validator(mode="after")
    def _credentials(self) -> PairRequest:
        if not self.peer_password and not self.peer_token:
            raise ValueError("give peer_password or peer_token to log in to the peer")
        if not urlsplit(self.peer_api_url).hostname or not self.peer_api_url.startswith("https://"):
            raise ValueError("peer_api_url must be an https:// URL")
        return self


class JoinRequest(_Shared):
    """The primary to the peer, over the peer's admin login."""

    auth_secret: str
    peer_address: str  # the primary's address
    peer_api_url: str  # the primary's management API
    peer_certificate_sha256: str | None
    local_address: str | None = None  # how the primary reached the peer (a hint)


def _url_host(address: str) -> str:
    return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address


def _settings(**values: Any) -> HASettings:
    try:
        return HASettings.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise PairError(422, first["msg"].removeprefix("Value error, "), field) from None


def _local(peer_address: str, given: str | None, interface: str | None) -> tuple[str, str]:
    try:
        local = given or addresses.source_toward(peer_address)
        return local, interface or addresses.interface_of(local)
    except addresses.AddressError as exc:
        raise PairError(422, str(exc), "local_address" if given else "interface") from None


@dataclass(frozen=True)
class Plan:
    """A pairing worked out on the primary, before the peer is asked."""

    ours: HASettings  # without the peer's certificate until the peer has answered
    join: JoinRequest
    authorization: str


def plan(request: PairRequest, api_port: int, certificate_sha256: str | None) -> Plan:
    """This node's settings and what to send the peer; nothing is stored or sent yet."""
    host = urlsplit(request.peer_api_url).hostname or ""
    try:
        peer_address = request.peer_address or addresses.resolve(host)
    except addresses.AddressError as exc:
        raise PairError(422, str(exc), "peer_api_url") from None
    local, interface = _local(peer_address, request.local_address, request.interface)
    shared = _Shared.model_validate(request.model_dump(include=set(_Shared.model_fields)))
    secret = secrets.token_urlsafe(32)
    ours = _settings(
        node="a",
        local_address=local,
        peer_address=peer_address,
        interface=interface,
        auth_secret=secret,
        peer_api_url=request.peer_api_url,
        **shared.model_dump(),
    )
    join = JoinRequest(
        auth_secret=secret,
        peer_address=local,
        peer_api_url=f"https://{_url_host(local)}:{api_port}/api/v1",
        peer_certificate_sha256=certificate_sha256,
        local_address=peer_address,
        **shared.model_dump(),
    )
    if request.peer_token:
        authorization = f"Bearer {request.peer_token}"
    else:
        authorization = peer.basic(request.peer_username, request.peer_password or "")
    return Plan(ours, join, authorization)


def ask_peer(request: PairRequest, planned: Plan) -> HASettings:
    """Send the join; returns this node's settings with the peer's certificate pinned."""
    try:
        answer = peer.call(
            request.peer_api_url,
            "POST",
            JOIN_PATH,
            planned.join.model_dump(mode="json"),
            headers={"Authorization": planned.authorization},
            timeout=JOIN_TIMEOUT,
        )
    except peer.PeerError as exc:
        raise PairError(422, str(exc), "peer_api_url") from None
    body = answer.body if isinstance(answer.body, dict) else {}
    detail = body.get("error") or answer.body
    if answer.status in (401, 403):
        field = "peer_token" if request.peer_token else "peer_password"
        raise PairError(422, f"the peer refused the credentials: {detail}", field)
    if answer.status == 409:
        raise PairError(409, f"the peer refused to pair: {detail}", "peer_api_url")
    if answer.status != 200:
        raise PairError(422, f"the peer answered HTTP {answer.status}: {detail}", "peer_api_url")
    return planned.ours.model_copy(update={"peer_certificate_sha256": answer.fingerprint})


def join(request: JoinRequest) -> HASettings:
    """The secondary's settings from the primary's join request."""
    local, interface = _local(request.peer_address, None, None)
    return _settings(
        node="b",
        local_address=local,
        peer_address=request.peer_address,
        interface=interface,
        auth_secret=request.auth_secret,
        peer_api_url=request.peer_api_url,
        peer_certificate_sha256=request.peer_certificate_sha256,
        **_Shared.model_validate(
            request.model_dump(include=set(_Shared.model_fields))
        ).model_dump(),
    )
