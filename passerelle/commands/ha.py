"""`passerelle ha`: what keepalived runs (notify, check), also usable by hand."""

from passerelle.engine.ha.command import add_parser

__all__ = ["add_parser"]
