"""Turning pydantic's errors into one clear message that names the field."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from passerelle.engine.model.config import Config, FieldError


class ConfigError(ValueError):
    """An invalid configuration: ``field`` is a dotted path such as ``virtual_services[0].port``."""

    def __init__(self, field: str, message: str, problems: list[tuple[str, str]] | None = None):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
        self.problems = problems or [(field, message)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "error": self.message,
            "field": self.field,
            "problems": [{"field": f, "error": m} for f, m in self.problems],
        }


def _path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def from_validation_error(exc: ValidationError) -> ConfigError:
    problems: list[tuple[str, str]] = []
    for err in exc.errors():
        path = _path(tuple(err["loc"]))
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError):
            path = f"{path}.{cause.field}" if path else cause.field
            message = str(cause)
        else:
            message = err["msg"].removeprefix("Value error, ")
        problems.append((path, message))
    field, message = problems[0]
    return ConfigError(field, message, problems)


def validate_config(data: Any) -> Config:
    """Validate a whole configuration (a dict from YAML/JSON/API); raise ConfigError if invalid."""
    if not isinstance(data, dict):
        raise ConfigError("", "a configuration must be a mapping with virtual_services")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc) from None
    check_certificates(config)
    return config


def check_certificates(config: Config) -> None:
    """PEM that parses and a key that matches, so that no worker ever fails to build a context."""
    if not config.certificates:
        return  # spares every certificate-free validation the cryptography import
    # The TLS layer owns certificate parsing and itself imports the model, hence the late import.
    from passerelle.engine.tls.certificates import CertificateError, inspect

    offloaded = {name for vs in config.virtual_services if vs.tls for name in vs.tls.certificates}
    for i, cert in enumerate(config.certificates):
        try:
            inspect(cert, require_key=cert.name in offloaded)
        except CertificateError as exc:
            raise ConfigError(f"certificates[{i}].{exc.field}", str(exc)) from None
