"""Request and response bodies of the API that are not the configuration model itself."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from passerelle.engine.manage.users import MAX_PASSWORD, MIN_PASSWORD, NAME_PATTERN


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(Body):
    field: str
    error: str


class ErrorBody(Body):
    error: str
    field: str = Field(
        description="the offending input, e.g. virtual_services[0].ports; '' if none"
    )
    problems: list[Problem] | None = None


class Health(Body):
    status: str = "ok"
    config_version: int


class ChangeResult(Body):
    version: int
    changed: bool


class VersionInfo(Body):
    number: int
    created: str = Field(description="ISO 8601, UTC")
    author: str
    comment: str
    digest: str


class VersionDetail(Body):
    version: VersionInfo
    config: dict[str, Any]


class ConfigDiff(Body):
    from_version: int
    to_version: int
    diff: str = Field(description="unified diff of the YAML exports; private keys redacted")


class CertificateInfo(Body):
    name: str
    subject_cn: str | None
    dns_names: list[str]
    not_before: str
    not_after: str
    days_left: int
    expired: bool
    key_type: str
    fingerprint_sha256: str
    self_signed: bool
    has_key: bool
    used_by: list[str] = Field(description="configuration fields that name this certificate")


class CertificateDetail(CertificateInfo):
    cert_pem: str
    chain_pem: str


class Statistics(Body):
    virtual_services: list[dict[str, Any]]


class EngineStatus(Body):
    status: dict[str, Any]


UserName = Annotated[str, Field(pattern=NAME_PATTERN)]
Password = Annotated[str, Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)]


class UserCreate(Body):
    name: UserName
    password: Password


class PasswordChange(Body):
    password: Password
    current_password: str | None = Field(
        default=None, description="required when changing one's own password"
    )


class UserInfo(Body):
    name: str
    created: str
    password_changed: str


class TokenCreate(Body):
    name: Annotated[str, Field(min_length=1, max_length=64)]


class TokenInfo(Body):
    id: str
    user: str
    name: str
    created: str
    last_used: str | None


class TokenCreated(TokenInfo):
    token: str = Field(description="the secret, shown this once: send as 'Authorization: Bearer'")


class Login(Body):
    username: Annotated[str, Field(max_length=64)]
    password: Annotated[str, Field(max_length=MAX_PASSWORD)]


class SessionInfo(Body):
    user: str
    method: str = Field(description="how this request was authenticated: basic, token, session")
    csrf_token: str | None = Field(
        default=None, description="send as X-CSRF-Token on unsafe requests with the cookie"
    )
    expires: str | None = None


class AuditRecord(Body):
    id: int
    time: str
    user: str
    address: str
    method: str
    path: str
    action: str
    status: int
    version: int | None
