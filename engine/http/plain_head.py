"""Splitting the plainest HTTP/1.1 heads without llhttp, or declining to.

Nearly every head a proxy sees has the plainest shape: one chunk holds all of it, every byte is
printable ASCII, lines end in CRLF, and each header is a token name, a colon and a value. The
llhttp callbacks cost about a thousand instructions each, and a small request and its response
make about twenty of them. The codec reads heads of that shape here instead.

These functions never refuse anything: any other shape, however valid, returns an empty answer
and the codec hands the chunk to llhttp, which then accepts or refuses it exactly as before. So
what is read here must be read exactly as llhttp reads it; tests/engine/http/test_plain_head.py
compares the two readings on generated heads, hostile ones included.

Written for the compiled build: ``translate`` with a table, ``join``, ``startswith``,
``endswith``, slicing and indexing of bytes are C primitives there, while any other bytes method
is a call through the interpreter's method lookup, so those are kept to a few per head. A
compiled bytes slice must not start past its end: mypyc does not clamp that to b"", it raises
SystemError.
"""

from __future__ import annotations

from typing import Final

from mypy_extensions import i64


def _table(allowed: bytes) -> bytes:
    """A translate table that keeps the bytes of ``allowed`` and changes every other byte, so
    ``text.translate(table) == text`` says whether ``text`` holds only allowed bytes."""
    return bytes(byte if byte in allowed else byte ^ 1 for byte in range(256))


# The bytes of an RFC 9110 token (header names, methods); the codec uses them too.
TOKEN_CHARS: Final = (
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
# Printable ASCII, HTAB and line ends: no other CTL, no DEL, no obs-text.
_PLAIN_TABLE: Final = _table(bytes(range(0x20, 0x7F)) + b"\t\r\n")
# Characters of an origin-form target that no parser reads differently (RFC 3986 unreserved,
# reserved and "%"; a bad percent sequence is the application's business, as with llhttp).
_TARGET_TABLE: Final = _table(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%"
)
# 1 at the bytes of a token, by byte value.
_IS_TOKEN: Final = bytes(1 if byte in TOKEN_CHARS else 0 for byte in range(256))
# bytes.lower() as a table: compiled, ``translate`` is a C call where ``lower()`` is a method
# looked up by name through the interpreter (see the module doc).
ASCII_LOWER: Final = bytes(byte | 0x20 if 0x41 <= byte <= 0x5A else byte for byte in range(256))
PLAIN_METHODS: Final = frozenset(
    (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH")
)
_LONGEST_METHOD: Final = 7
# Longer Content-Length values are llhttp's to read (it refuses those past 2**64).
_MOST_LENGTH_DIGITS: Final = 15
_SPACE: Final = 0x20
_TAB: Final = 0x09
_COLON: Final = 0x3A
_ZERO: Final = 0x30
# Chunks up to this size are split at the end of their head by partition(), which copies what
# follows the head: past it, that copy would cost more than find()'s argument parsing.
_PARTITIONED: Final = 4096


def head_lines(data: bytes, start: int, max_head_bytes: int, max_headers: int) -> list[bytes]:
    """The lines of the head that begins at ``start``, its blank line left out, or an empty
    list: the head is not whole in ``data``, not plain, or near a limit."""
    if start == 0 and data.endswith(b"\r\n\r\n"):
        lines = _whole_chunk_lines(data, max_head_bytes, max_headers)
        if lines:
            return lines
    if start == 0 and len(data) <= _PARTITIONED:
        # partition takes one argument as it comes; find parses its arguments (see above)
        head, end_of_head, _ = data.partition(b"\r\n\r\n")
        if not end_of_head:
            return []
    else:
        end = data.find(b"\r\n\r\n", start)
        if end < 0:
            return []
        head = data[start:end]
    if head.translate(_PLAIN_TABLE) != head:
        return []
    # splitlines() breaks at CRLF and at a lone CR or LF too: the lines and 2 bytes between
    # each two of them add up to the head only when every break was a CRLF. It also drops a
    # line end that ends the head, which would hide a lone one before it.
    if head.endswith(b"\r") or head.endswith(b"\n"):
        return []
    lines = head.splitlines()
    breaks = len(lines) - 1
    size = 2 * breaks
    for line in lines:
        size += len(line)
    if size != len(head):
        return []
    # The codec's limits: a head this close to them is measured the slow way, which names the
    # fault (1 byte a line covers the size as the limit counts it, see codec._pairs_size).
    if breaks > max_headers or size + breaks + 4 > max_head_bytes:
        return []
    return lines


def _whole_chunk_lines(data: bytes, max_head_bytes: int, max_headers: int) -> list[bytes]:
    """head_lines for a chunk that ends where a head ends, as most requests without a body
    arrive: when it is all one plain head, its lines come from one pass, with no search for
    the head's end (``find`` parses its arguments through the interpreter: about a thousand
    instructions). An empty list leaves the chunk to the search."""
    if data.translate(_PLAIN_TABLE) != data:
        return []
    # The chunk's last CRLF ends the blank line, which comes out as a last empty line; an
    # empty line before it would be the end of an earlier head (pipelined requests).
    lines = data.splitlines()
    last = len(lines) - 1
    size = 2 * last + 2
    for index in range(last):
        line = lines[index]
        if not line:
            return []
        size += len(line)
    if size != len(data) or lines[last]:
        return []
    lines.pop()
    breaks = last - 1
    # head_lines's limits, as it counts them (the chunk is the head and its 4 closing bytes)
    if breaks > max_headers or size + breaks > max_head_bytes:
        return []
    return lines


def head_size(lines: list[bytes]) -> int:
    """Bytes of the head split into ``lines`` by head_lines, its blank line included."""
    size = 2 + 2 * len(lines)
    for line in lines:
        size += len(line)
    return size


def request_line(line: bytes) -> list[bytes]:
    """[method, target, version] of a plain request line, or an empty list.

    Plain: a method of PLAIN_METHODS, an origin-form target of _TARGET_TABLE's characters,
    HTTP/1.0 or 1.1, one space between them."""
    if line.endswith(b" HTTP/1.1"):
        version = b"1.1"
    elif line.endswith(b" HTTP/1.0"):
        version = b"1.0"
    else:
        return []
    target_end = len(line) - 9
    space = 0
    while space < target_end and space <= _LONGEST_METHOD and line[space] != _SPACE:
        space += 1
    method = line[:space]
    if (method != b"GET" and method not in PLAIN_METHODS) or space >= target_end:
        return []  # the second test also keeps the slice below in order (see module doc)
    target = line[space + 1 : target_end]
    if not target.startswith(b"/") or target.translate(_TARGET_TABLE) != target:
        return []
    return [method, target, version]


def status_code(line: bytes) -> int:
    """The status of a plain status line (``HTTP/1.x NNN reason``), or 0; its version is
    line[5:8] and its reason line[13:]."""
    if len(line) < 13 or line[12] != _SPACE:
        return 0
    if not line.startswith(b"HTTP/1.1 ") and not line.startswith(b"HTTP/1.0 "):
        return 0
    status = 0
    for index in range(9, 12):
        digit = line[index] - _ZERO
        if digit < 0 or digit > 9:
            return 0
        status = status * 10 + digit
    return status


def header_colons(lines: list[bytes]) -> list[int] | None:
    """Where the colon of each header line (``lines[1:]``) is, or None unless every one of them
    is a token, a colon and a value."""
    # i64, not int: compiled, the byte loop then does machine arithmetic, not tagged integers.
    colons: list[int] = []
    count: i64 = len(lines)
    index: i64 = 1
    while index < count:
        line = lines[index]
        size: i64 = len(line)
        colon: i64 = 0
        while colon < size:
            char = line[colon]
            if char == _COLON:
                break
            if not _IS_TOKEN[char]:
                return None
            colon += 1
        if colon == 0 or colon == size:
            return None
        colons.append(colon)
        index += 1
    return colons


def header_value(line: bytes, colon: int) -> bytes:
    """The value of a header line whose colon is at ``colon``, stripped of OWS."""
    size = len(line)
    start = colon + 1
    while start < size and (line[start] == _SPACE or line[start] == _TAB):
        start += 1
    end = size
    while end > start and (line[end - 1] == _SPACE or line[end - 1] == _TAB):
        end -= 1
    return line[start:end]


def pairs_at(lines: list[bytes], colons: list[int]) -> list[tuple[bytes, bytes]]:
    """(name, value) of each header line, from its colon (see header_colons)."""
    pairs: list[tuple[bytes, bytes]] = []
    for index in range(len(colons)):
        line = lines[index + 1]
        colon = colons[index]
        pairs.append((line[:colon], header_value(line, colon)))
    return pairs


def header_pairs(lines: list[bytes]) -> list[tuple[bytes, bytes]] | None:
    """(name, value) of lines[1:], each value stripped of OWS, or None unless every line is a
    token, a colon and a value."""
    colons = header_colons(lines)
    return None if colons is None else pairs_at(lines, colons)


def decimal(value: bytes) -> int:
    """The value of a plain Content-Length (1 to 15 digits), or -1."""
    size = len(value)
    if size == 0 or size > _MOST_LENGTH_DIGITS:
        return -1
    number = 0
    for index in range(size):
        digit = value[index] - _ZERO
        if digit < 0 or digit > 9:
            return -1
        number = number * 10 + digit
    return number


# What a plain reading does with a header (see header_kind).
OTHER: Final = 0
HOST: Final = 1
CONTENT_LENGTH: Final = 2
CONNECTION: Final = 3
EXPECT: Final = 4
DECLINED: Final = 5  # llhttp's rules apply: Transfer-Encoding, Upgrade, Proxy-Connection
# Connection values a plain reading takes (llhttp reads a list of options; plain is one).
CLOSE: Final = 1
KEEP_ALIVE: Final = 2


def _spelled(text: bytes, usual: bytes, lowercase: bytes) -> bool:
    """Whether ``text`` starts with ``lowercase`` in any case (a caller has checked where it
    ends): the usual spelling, and a word with another first letter, are told without a
    slice or a lower() call."""
    if text.startswith(usual):
        return True
    if text[0] | 0x20 != lowercase[0]:
        return False
    return text[: len(lowercase)].translate(ASCII_LOWER) == lowercase


def header_kind(line: bytes, colon: int) -> int:
    """Which of the headers a plain reading looks at the line names (its colon at ``colon``),
    or OTHER. Only the name's length and first bytes are read: no slice for most headers."""
    if colon == 4:
        return HOST if _spelled(line, b"Host", b"host") else OTHER
    if colon == 14:
        return CONTENT_LENGTH if _spelled(line, b"Content-Length", b"content-length") else OTHER
    if colon == 10:
        return CONNECTION if _spelled(line, b"Connection", b"connection") else OTHER
    if colon == 6:
        return EXPECT if _spelled(line, b"Expect", b"expect") else OTHER
    if colon == 17:
        declined = _spelled(line, b"Transfer-Encoding", b"transfer-encoding")
    elif colon == 7:
        declined = _spelled(line, b"Upgrade", b"upgrade")
    elif colon == 16:
        declined = _spelled(line, b"Proxy-Connection", b"proxy-connection")
    else:
        return OTHER
    return DECLINED if declined else OTHER


def connection_option(value: bytes) -> int:
    """CLOSE or KEEP_ALIVE for a Connection value that is just that option, else 0."""
    size = len(value)
    if size == 5:
        return CLOSE if _spelled(value, b"close", b"close") else 0
    if size == 10:
        return KEEP_ALIVE if _spelled(value, b"keep-alive", b"keep-alive") else 0
    return 0
