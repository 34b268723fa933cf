"""Serialisation of HTTP/1.1 heads, chunks and the proxy's own small responses.

Callers pass names and values that are already valid (parsed by the codec or checked by
the configuration model): nothing here re-validates them, to keep the hot path lean.

HOP_BY_HOP follows RFC 9110 section 7.6.1 (Connection, Proxy-Connection, Keep-Alive, TE,
Transfer-Encoding, Upgrade) plus Trailer, because the proxy re-frames bodies without
trailers. Proxy-Authenticate and Proxy-Authorization are not in it: RFC 9110 no longer
treats them as hop-by-hop, and a reverse proxy that does no proxy authentication has no
reason to consume them. Upgrade is hop-by-hop too: the proxy re-adds ``Connection:
upgrade`` and ``Upgrade`` itself when it forwards an upgrade request or a 101 response.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Final

from .plain_head import ASCII_LOWER

HOP_BY_HOP: Final[frozenset[bytes]] = frozenset(
    (
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    )
)

LAST_CHUNK: Final = b"0\r\n\r\n"
# Schemes that authenticate the TCP connection rather than the request.
CONNECTION_AUTH_SCHEMES: Final = (b"ntlm", b"negotiate")


def is_connection_auth(value: bytes | None) -> bool:
    """Whether an Authorization or WWW-Authenticate value is NTLM or Negotiate."""
    if not value:
        return False
    scheme = value.split(b" ", 1)[0].lower()
    return scheme in CONNECTION_AUTH_SCHEMES


def any_connection_auth(values: list[bytes]) -> bool:
    return any(is_connection_auth(v) for v in values)


_NO_TOKENS: Final[frozenset[bytes]] = frozenset()
_REASONS: Final = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}


def connection_options(values: list[bytes]) -> frozenset[bytes]:
    """Lowercased option names listed in Connection header ``values``: hop-by-hop as well."""
    if not values:
        return _NO_TOKENS
    tokens = {token.strip(b" \t").lower() for value in values for token in value.split(b",")}
    tokens.discard(b"")
    return frozenset(tokens)


# Connection header values seen lately and the options they name beyond HOP_BY_HOP: nearly every
# peer sends one of a handful ("keep-alive", "close", "Upgrade"), and a message naming none of
# its own headers then costs one dictionary lookup.
_extra_options: Final[dict[bytes, frozenset[bytes]]] = {}
_EXTRA_OPTIONS_KEPT: Final = 256


def extra_connection_options(values: list[bytes]) -> frozenset[bytes]:
    """The options named by Connection header ``values`` that are not hop-by-hop anyway."""
    if len(values) != 1:
        return connection_options(values) - HOP_BY_HOP
    value = values[0]
    extra = _extra_options.get(value)
    if extra is None:
        extra = connection_options(values) - HOP_BY_HOP
        if len(_extra_options) >= _EXTRA_OPTIONS_KEPT:
            _extra_options.clear()
        _extra_options[value] = extra
    return extra


def connection_tokens(headers: list[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """The options named by the Connection headers among ``headers`` (see connection_options)."""
    return connection_options(
        [value for name, value in headers if len(name) == 10 and name.lower() == b"connection"]
    )


def strip_hop_by_hop(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A copy of ``headers`` without the hop-by-hop ones, named by Connection included."""
    drop = HOP_BY_HOP | connection_tokens(headers)
    return [(name, value) for name, value in headers if name.lower() not in drop]


# Status lines already built, by status: servers answer with a few (status, reason) pairs, and
# formatting the number is the dearest part of a small response head.
_status_lines: Final[dict[int, tuple[bytes, bytes]]] = {}
_STATUS_LINES_KEPT: Final = 128


def status_line(status: int, reason: bytes) -> bytes:
    """``HTTP/1.1 status reason``, without the line end."""
    known = _status_lines.get(status)
    if known is not None and known[0] == reason:
        return known[1]
    line = b"HTTP/1.1 %d %s" % (status, reason)
    if len(_status_lines) >= _STATUS_LINES_KEPT:
        _status_lines.clear()
    _status_lines[status] = (reason, line)
    return line


class DropSet:
    """The header names (lower-case) a forwarded head leaves out.

    Their lengths are kept too, as a table by length: a name of another length is kept without
    being lowercased, and most names are (lowercasing makes a new bytes object, then hashes it).
    A table, not a set of lengths: compiled, indexing bytes is C, a set lookup boxes the length
    and hashes it."""

    __slots__ = ("lengths", "names")

    def __init__(self, names: frozenset[bytes]) -> None:
        self.names = names
        sizes = {len(name) for name in names}
        self.lengths = bytes(size in sizes for size in range(max(sizes, default=0) + 1))

    def __or__(self, more: frozenset[bytes]) -> DropSet:
        return DropSet(self.names | more)

    def leaves_out(self, text: bytes, size: int) -> bool:
        """Whether the header named by the first ``size`` bytes of ``text`` (a name, or a
        header line whose colon is at ``size``) is left out."""
        lengths = self.lengths
        return (
            size < len(lengths)
            and lengths[size] != 0
            and text[:size].translate(ASCII_LOWER) in self.names
        )

    def head_lines(self, headers: list[tuple[bytes, bytes]]) -> list[bytes]:
        """``Name: value`` for each header not left out, in order."""
        return [
            name + b": " + value for name, value in headers if not self.leaves_out(name, len(name))
        ]

    def keeps_all(self, received: list[bytes], colons: list[int], count: int) -> bool:
        """Whether none of the first ``count`` header lines of a head as received is left out
        (see kept_lines)."""
        for index in range(count):
            if self.leaves_out(received[index + 1], colons[index]):
                return False
        return True

    def kept_lines(self, received: list[bytes], colons: list[int]) -> list[bytes]:
        """The header lines of a head as received (start line first, then one per colon in
        ``colons``; see plain_head.header_colons) that are not left out, in order."""
        return [
            received[index + 1]
            for index in range(len(colons))
            if not self.leaves_out(received[index + 1], colons[index])
        ]


# Joined with CRLF after the start line and the header lines, these end the head.
HEAD_END: Final = (b"", b"")


def _head(first_line: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    lines = [first_line]
    lines += [name + b": " + value for name, value in headers]
    lines += HEAD_END
    return b"\r\n".join(lines)


def request_head_bytes(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """``METHOD target HTTP/1.1``, the headers in order, and the blank line."""
    return _head(b"%s %s HTTP/1.1" % (method, target), headers)


def response_head_bytes(status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """``HTTP/1.1 status reason``, the headers in order, and the blank line."""
    return _head(status_line(status, reason), headers)


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk. Empty data is refused: an empty chunk would end the body."""
    if not data:
        raise ValueError("an empty chunk is the last chunk; send LAST_CHUNK instead")
    return b"%x\r\n%s\r\n" % (len(data), data)


def reason_phrase(status: int) -> bytes:
    """The standard reason phrase of ``status``; empty for codes without one."""
    return _REASONS.get(status, b"")


def error_response(
    status: int,
    message: str,
    *,
    close: bool = True,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> bytes:
    """A complete small text/plain response of the proxy's own; the body ends with a newline."""
    body = message.encode("utf-8")
    if not body.endswith(b"\n"):
        body += b"\n"
    headers = [
        (b"Content-Type", b"text/plain; charset=utf-8"),
        (b"Content-Length", b"%d" % len(body)),
        (b"Cache-Control", b"no-store"),
    ]
    if close:
        headers.append((b"Connection", b"close"))
    if extra_headers:
        headers += extra_headers
    return response_head_bytes(status, reason_phrase(status), headers) + body
