"""The REST API of the management plane: /api/v1 over HTTPS on the management address."""

from passerelle.engine.manage.api.app import create_app

__all__ = ["create_app"]
