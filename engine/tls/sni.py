"""Choosing the certificate a virtual service presents for the server name a client sent."""

from __future__ import annotations

from collections.abc import Sequence


def normalise(server_name: str | None) -> str:
    """Lowercase, without the trailing dot of a fully-qualified name; '' for no name."""
    if not server_name:
        return ""
    return server_name.lower().rstrip(".")


class SNITable:
    """Certificates indexed once so that each handshake costs two dict look-ups.

    Exact names win over wildcards; among certificates that claim the same name, the one
    configured first wins. A wildcard ``*.x.y`` stands for exactly one label, as in RFC 6125.
    """

    __slots__ = ("_exact", "_wildcard", "default")

    def __init__(self, certificates: Sequence[tuple[str, Sequence[str]]]) -> None:
        if not certificates:
            raise ValueError("at least one certificate is needed")
        self.default: str = certificates[0][0]
        self._exact: dict[str, str] = {}
        self._wildcard: dict[str, str] = {}
        for name, dns_names in certificates:
            for dns_name in dns_names:
                dns_name = normalise(dns_name)
                if dns_name.startswith("*."):
                    self._wildcard.setdefault(dns_name[2:], name)
                elif dns_name and "*" not in dns_name:
                    # partial wildcards ("w*.x.y") are not honoured by browsers either
                    self._exact.setdefault(dns_name, name)

    def choose(self, server_name: str | None) -> str:
        name = normalise(server_name)
        if not name:
            return self.default
        found = self._exact.get(name)
        if found is not None:
            return found
        label, _, parent = name.partition(".")
        if label and parent:
            found = self._wildcard.get(parent)
            if found is not None:
                return found
        return self.default


def choose_certificate(
    server_name: str | None, certificates: Sequence[tuple[str, Sequence[str]]]
) -> str:
    """The name of the certificate to present: exact match, then wildcard, else the first one.

    ``certificates`` is ``(name, dns_names)`` in configured order. Build an ``SNITable`` instead
    when choosing for many connections.
    """
    return SNITable(certificates).choose(server_name)
