"""Joining two appliances into an HA pair, behind an interface the HA engine fills in.

Today the primary's management API does the work (POST /api/v1/ha/pair); appliances built
before HA pairing existed answer 404, which is reported, not fatal, so the two appliances
stay usable and can be paired later from the web UI or by running the deployment again.
"""

from __future__ import annotations

import http.client
import ssl
from dataclasses import dataclass
from typing import Literal, Protocol

from passerelle.provisioning.appliance_api import ApplianceApi, Credentials
from passerelle.provisioning.errors import DeployError

PAIR_PATH = "/ha/pair"

PairingState = Literal["paired", "already-paired", "unavailable"]


@dataclass(frozen=True)
class PairingResult:
    state: PairingState
    detail: str


class Pairing(Protocol):
    """Makes `primary` the active member and `secondary` its standby; idempotent."""

    def pair(
        self, primary_api_url: str, secondary_api_url: str, credentials: Credentials
    ) -> PairingResult: ...


class ApiPairing:
    """Pairs through the primary's REST API; the primary contacts the secondary itself."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout

    def pair(
        self, primary_api_url: str, secondary_api_url: str, credentials: Credentials
    ) -> PairingResult:
        api = ApplianceApi(primary_api_url, credentials, timeout=self.timeout)
        request = {
            "peer_api_url": secondary_api_url,
            "peer_username": credentials.username,
            "peer_password": credentials.password,
            "role": "primary",
        }
        try:
            response = api.request("POST", PAIR_PATH, request)
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            raise DeployError(
                f"pairing: cannot reach the primary {primary_api_url} ({exc}); run the "
                "command again once it answers"
            ) from exc
        if response.status in (200, 201, 202, 204):
            return PairingResult("paired", f"{primary_api_url} paired with {secondary_api_url}")
        if response.status == 409:
            return PairingResult("already-paired", _error_text(response.body) or "already paired")
        if response.status == 404:
            return PairingResult(
                "unavailable",
                "pairing not available on this appliance version (POST "
                f"{api.base_path}{PAIR_PATH} answered 404); the appliances run standalone, "
                "pair them once they are updated",
            )
        if response.status == 401:
            raise DeployError(
                f"pairing: {primary_api_url} rejected user {credentials.username!r}; the "
                "appliance has another admin password than the one given (--admin-password)"
            )
        raise DeployError(
            f"pairing: {primary_api_url} answered HTTP {response.status}: "
            f"{_error_text(response.body) or 'no details'}"
        )


def _error_text(body: object) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        field = body.get("field")
        return f"{error} ({field})" if error and field else str(error or "")
    return str(body or "")[:200]


def pair(
    primary_api_url: str,
    secondary_api_url: str,
    credentials: Credentials,
    pairing: Pairing | None = None,
) -> PairingResult:
    return (pairing or ApiPairing()).pair(primary_api_url, secondary_api_url, credentials)
