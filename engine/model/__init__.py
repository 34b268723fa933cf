"""The configuration model: the one truth that the API, UI, files, templates and HA sync share.

Both planes import it; it imports neither.
"""

from passerelle.engine.model.config import (
    Certificate,
    Config,
    HeaderOptions,
    HealthCheck,
    NoMatchResponse,
    Persistence,
    RealServer,
    Rule,
    SubVS,
    TLSOffload,
    TLSReencrypt,
    VirtualService,
)
from passerelle.engine.model.errors import ConfigError, validate_config
from passerelle.engine.model.ha import HASettings

__all__ = [
    "Certificate",
    "Config",
    "ConfigError",
    "HASettings",
    "HeaderOptions",
    "HealthCheck",
    "NoMatchResponse",
    "Persistence",
    "RealServer",
    "Rule",
    "SubVS",
    "TLSOffload",
    "TLSReencrypt",
    "VirtualService",
    "validate_config",
]
