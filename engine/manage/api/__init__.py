"""The REST API of the management plane: /api/v1 over HTTPS on the management address.

Nothing is imported here: the engine imports parts of this package (the listener, the first
admin) at start without loading the web framework (see ``plane``)."""
