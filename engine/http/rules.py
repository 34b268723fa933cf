"""Content switching: which SubVS of a virtual service serves a request.

Everything that can be prepared from the configuration (lower-cased host sets, compiled
regular expressions) is prepared once per configuration load by ``ContentSwitch``; ``choose``
then does set look-ups and, only for rules that have them, regex searches.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # a worker reads the plain copy (runtime/snapshot.py), never pydantic
    from passerelle.engine.model.config import Rule, VirtualService


# Host headers seen lately, normalised: a client sends the same one on every request.
_normalised_hosts: Final[dict[bytes, str]] = {}
_NORMALISED_HOSTS_KEPT: Final = 1024


def normalise_host(host: bytes | None) -> str:
    """A Host header (or SNI) in the form rules compare: lower case, no port, no trailing dot.

    ``b"WebExt.Contoso.com:443"`` -> ``"webext.contoso.com"``; ``b"[::1]:8443"`` -> ``"::1"``
    (brackets dropped, as addresses appear in the configuration); None -> ``""``.
    """
    if not host:
        return ""
    known = _normalised_hosts.get(host)
    if known is not None:
        return known
    text = _normalised(host)
    if len(_normalised_hosts) >= _NORMALISED_HOSTS_KEPT:
        _normalised_hosts.clear()
    _normalised_hosts[host] = text
    return text


def _normalised(host: bytes) -> str:
    text = host.decode("latin-1").strip().lower()
    if text.startswith("["):
        end = text.find("]")
        text = text[1:end] if end > 0 else text[1:]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    return text.rstrip(".")


def _pattern(pattern: str) -> str:
    return pattern.strip().lower().rstrip(".")


def host_matches(pattern: str, host: str) -> bool:
    """Exact match, or ``*.contoso.com`` matching exactly one more label (certificate rules).

    ``*.contoso.com`` matches ``a.contoso.com``, not ``contoso.com`` nor ``a.b.contoso.com``.
    Both sides compare case-insensitively; ``host`` should come from ``normalise_host``.
    """
    pattern = _pattern(pattern)
    host = host.lower()
    if pattern.startswith("*."):
        dot = host.find(".")
        return dot > 0 and host[dot:] == pattern[1:]
    return host == pattern


class RequestFacts:
    """What content switching may look at in a request.

    ``path`` is the request target's path without the query, exactly as sent: not
    percent-decoded nor dot-segment-normalised, so ``/%61dmin`` does not match a ``/admin``
    prefix. Rules select a pool; they are not an access control.
    """

    # A plain class, not a dataclass: see codec._Record for why (one is made per request).
    __slots__ = ("header", "host", "path", "sni")

    def __init__(
        self,
        host: str,  # normalise_host() of the Host header (or of the authority of an absolute URI)
        path: str,
        sni: str | None,  # server name the TLS client sent; None for plain HTTP or no SNI
        header: Callable[[str], str | None],  # lower-case name -> first value (latin-1) or None
    ) -> None:
        self.host = host
        self.path = path
        self.sni = sni
        self.header = header


class _HostSet:
    """Host patterns of one condition, split so that matching is two set look-ups."""

    __slots__ = ("exact", "suffixes")

    def __init__(self, patterns: list[str]) -> None:
        normalised = [_pattern(p) for p in patterns]
        self.exact = frozenset(p for p in normalised if not p.startswith("*."))
        self.suffixes = frozenset(p[1:] for p in normalised if p.startswith("*."))  # ".x.com"

    def __contains__(self, host: str) -> bool:
        if host in self.exact:
            return True
        if self.suffixes:
            dot = host.find(".")
            return dot > 0 and host[dot:] in self.suffixes
        return False


class _CompiledRule:
    __slots__ = ("header", "header_regex", "hosts", "path_prefix", "path_regex", "snis")

    def __init__(self, rule: Rule) -> None:
        self.hosts = _HostSet(rule.host) if rule.host else None
        self.snis = _HostSet(rule.sni) if rule.sni else None
        self.path_prefix = rule.path_prefix
        self.path_regex = re.compile(rule.path_regex) if rule.path_regex is not None else None
        self.header = rule.header.lower() if rule.header is not None else None
        self.header_regex = re.compile(rule.header_regex) if rule.header_regex is not None else None

    def matches(self, facts: RequestFacts) -> bool:
        # Cheapest conditions first; a regex runs only when everything else already holds.
        if self.hosts is not None and facts.host not in self.hosts:
            return False
        if self.snis is not None:
            sni = facts.sni
            if not sni or sni.lower().rstrip(".") not in self.snis:
                return False
        if self.path_prefix is not None and not facts.path.startswith(self.path_prefix):
            return False
        if self.path_regex is not None and self.path_regex.search(facts.path) is None:
            return False
        if self.header is not None:
            value = facts.header(self.header)
            if value is None:
                return False
            if self.header_regex is not None and self.header_regex.search(value) is None:
                return False
        return True


class ContentSwitch:
    """SubVS selection for one virtual service; build one per configuration load."""

    __slots__ = ("_default", "_subvs")

    def __init__(self, vs: VirtualService) -> None:
        self._subvs: tuple[tuple[str, tuple[_CompiledRule, ...]], ...] = tuple(
            (subvs.name, tuple(_CompiledRule(rule) for rule in subvs.rules))
            for subvs in vs.subvs
            if subvs.rules  # a SubVS without rules is reachable only as the default
        )
        self._default = vs.default_subvs

    def choose(self, facts: RequestFacts) -> str | None:
        """Name of the first SubVS (configuration order) with a matching rule, else the default.

        A rule matches when all its conditions hold; a SubVS matches when any of its rules does.
        """
        for name, rules in self._subvs:
            for rule in rules:
                if rule.matches(facts):
                    return name
        return self._default
