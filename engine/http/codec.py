"""Sans-IO HTTP/1.1 readers: bytes in, events out, on llhttp (httptools).

A reader turns the bytes of one connection into events. Every ``RequestHead`` or
``ResponseHead`` is followed by zero or more ``Body`` and exactly one ``END_OF_MESSAGE``.
After the ``END_OF_MESSAGE`` of an upgrade request (or of a 101 response) comes one
``Upgraded`` holding the bytes that followed; from then on every fed chunk comes back
as another ``Upgraded``, untouched.

llhttp runs in strict mode and already refuses most hostile shapes (obs-fold, bare LF,
invalid name characters, whitespace before the colon, CR/LF/NUL/CTL in values, bad or
duplicate Content-Length, bad chunk sizes, missing CRLF after chunk data, invalid
request line). The callbacks add what a proxy needs on top: Transfer-Encoding must be
exactly ``chunked`` and only on HTTP/1.1, one Host (required on HTTP/1.1), versions
1.0/1.1 only, no CONNECT, and limits on the size of a head. What a chunked body carries
between two slices of its data (the rest of a chunk-size line, its extensions, trailers) is
held to the head's size limit as well, and refused like a head over it: llhttp reads it in
the dark and httptools keeps an unfinished trailer name or value to itself, so a line that
never ends would otherwise be taken, and buffered, for as long as the peer sends it.

Status codes chosen for requests: malformed input 400; CONNECT 405; a well-formed but
unknown method token 501 (best effort: only when the request starts the fed chunk,
otherwise 400); any HTTP version but 1.0 and 1.1, including HTTP/0.9 simple requests,
505; head or header count over the limit 431. Every refusal of a response is 502.

Known leniencies of llhttp that remain: a chunk size padded with leading zeros beyond
16 digits is accepted (its value cannot overflow, and bodies are re-framed by the proxy
so no other parser ever sees it); several spaces between method and target are accepted
(the request line is re-serialised, so nothing ambiguous is forwarded).
"""

from __future__ import annotations

from itertools import chain
from typing import Any, Final, NoReturn

import httptools
from mypy_extensions import i64

from .plain_head import (
    ASCII_LOWER,
    CLOSE,
    CONNECTION,
    CONTENT_LENGTH,
    EXPECT,
    HOST,
    KEEP_ALIVE,
    OTHER,
    TOKEN_CHARS,
    connection_option,
    decimal,
    head_lines,
    head_size,
    header_colons,
    header_kind,
    header_value,
    pairs_at,
    request_line,
    status_code,
)


class HttpError(Exception):
    """Refusal of a message; ``reason`` is fixed text that is safe to send to a client."""

    status: int
    reason: str

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"


class _Record:
    """Equality and repr by fields, for tests and logs.

    The events are plain classes with their ``__init__`` written out, not dataclasses: a compiled
    module builds a dataclass's generated ``__init__`` from source at run time, and every event
    would then go through the interpreter and a dictionary of arguments.
    """

    __slots__ = ()

    def _fields(self) -> tuple[object, ...]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, _Record)
            and other._fields() == self._fields()
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self._fields()!r}"


# The ``lines`` and ``colons`` of a head that llhttp read: its lines as received are not kept.
NO_LINES: Final[list[bytes]] = []
NO_COLONS: Final[list[int]] = []
_QUESTION_MARK: Final = 0x3F


class _HeaderLookup(_Record):
    """get() and get_all() of both heads.

    A plain head (see plain_head) keeps its ``lines`` as received, start line first, and where
    the colon of each header line is. Its (name, value) ``headers`` are made from them only
    when something asks for them: a forwarded head keeps each header's line as it is, and a
    small request and its response are proxied without them. Lines and colons are left out of
    equality, which compares what a head says, not how it was read.
    """

    __slots__ = ("_headers", "colons", "lines")
    _headers: list[tuple[bytes, bytes]] | None
    lines: list[bytes]
    colons: list[int]

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        headers = self._headers
        if headers is None:
            headers = self._headers = pairs_at(self.lines, self.colons)
        return headers

    def get(self, name: bytes) -> bytes | None:
        """First value of header ``name`` (given lowercase), or None."""
        size = len(name)
        if self._headers is None:
            lines, colons = self.lines, self.colons
            for index in range(len(colons)):
                if colons[index] == size:
                    line = lines[index + 1]
                    if line[:size].translate(ASCII_LOWER) == name:
                        return header_value(line, size)
            return None
        for key, value in self._headers:
            # The length test skips lowering the name for nearly every header.
            if len(key) == size and key.translate(ASCII_LOWER) == name:
                return value
        return None

    def text(self, name: str) -> str | None:
        """First value of header ``name`` (given lowercase) as text, for content switching."""
        value = self.get(name.encode("latin-1"))
        return None if value is None else value.decode("latin-1")

    def get_all(self, name: bytes) -> list[bytes]:
        """Every value of header ``name`` (given lowercase), in order."""
        size = len(name)
        return [value for key, value in self.headers if len(key) == size and key.lower() == name]


def _pairs_size(headers: list[tuple[bytes, bytes]]) -> int:
    """Size of header lines as the head limit counts them: name, value and 4 bytes each."""
    return sum(map(len, chain.from_iterable(headers))) + 4 * len(headers)


class RequestHead(_HeaderLookup):
    __slots__ = (
        "chunked",
        "connection",
        "content_length",
        "expect_continue",
        "keep_alive",
        "method",
        "target",
        "upgrade",
        "version",
        "whole",
    )

    def __init__(
        self,
        method: bytes,
        target: bytes,
        version: bytes,
        headers: list[tuple[bytes, bytes]] | None,  # None: made from lines and colons
        keep_alive: bool,
        chunked: bool,
        content_length: int | None,
        upgrade: bool,
        expect_continue: bool,
        connection: list[bytes],  # values of the Connection headers, as sent
        lines: list[bytes] = NO_LINES,
        colons: list[int] = NO_COLONS,
        whole: bytes = b"",
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self._headers = headers
        self.keep_alive = keep_alive
        self.chunked = chunked
        self.content_length = content_length
        self.upgrade = upgrade
        self.expect_continue = expect_continue
        self.connection = connection
        self.lines = lines
        self.colons = colons
        # A plain HTTP/1.1 request without a body that came alone in one read: its bytes.
        self.whole = whole

    def _fields(self) -> tuple[object, ...]:
        return (
            self.method,
            self.target,
            self.version,
            self.headers,
            self.keep_alive,
            self.chunked,
            self.content_length,
            self.upgrade,
            self.expect_continue,
            self.connection,
        )

    @property
    def path(self) -> bytes:
        """The target without its query string."""
        # A byte loop, not find(): compiled, find() is a call through the method lookup.
        target = self.target
        size: i64 = len(target)
        index: i64 = 0
        while index < size:
            if target[index] == _QUESTION_MARK:
                return target[:index]
            index += 1
        return target


class ResponseHead(_HeaderLookup):
    __slots__ = (
        "chunked",
        "connection",
        "content_length",
        "keep_alive",
        "reason",
        "status",
        "version",
        "whole",
    )

    def __init__(
        self,
        status: int,
        reason: bytes,
        version: bytes,
        headers: list[tuple[bytes, bytes]] | None,  # None: made from lines and colons
        keep_alive: bool,
        chunked: bool,
        content_length: int | None,
        connection: list[bytes],  # values of the Connection headers, as sent
        lines: list[bytes] = NO_LINES,
        colons: list[int] = NO_COLONS,
        whole: bytes = b"",
    ) -> None:
        self.status = status
        self.reason = reason
        self.version = version
        self._headers = headers
        self.keep_alive = keep_alive
        self.chunked = chunked
        self.content_length = content_length
        self.connection = connection
        self.lines = lines
        self.colons = colons
        # A plain response that came alone in one read: all of its bytes, head and body.
        self.whole = whole

    def _fields(self) -> tuple[object, ...]:
        return (
            self.status,
            self.reason,
            self.version,
            self.headers,
            self.keep_alive,
            self.chunked,
            self.content_length,
            self.connection,
        )


class Body(_Record):
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data  # payload, already de-chunked

    def _fields(self) -> tuple[object, ...]:
        return (self.data,)


class EndOfMessage:
    __slots__ = ()

    def __repr__(self) -> str:
        return "END_OF_MESSAGE"


END_OF_MESSAGE: Final = EndOfMessage()


class Upgraded(_Record):
    __slots__ = ("rest",)

    def __init__(self, rest: bytes) -> None:
        self.rest = rest  # tunnel bytes that followed the message; may be empty

    def _fields(self) -> tuple[object, ...]:
        return (self.rest,)


Event = RequestHead | ResponseHead | Body | EndOfMessage | Upgraded

# Reader states. Everything from _DONE on bypasses llhttp.
_IDLE: Final = 0  # between messages
_HEAD: Final = 1  # inside a head
_BODY: Final = 2  # head delivered, body not finished
_DONE: Final = 3  # last message on this connection finished: later bytes are ignored
_UPGRADE_BODY: Final = 4  # upgrade request whose Content-Length body is still arriving
_UPGRADED: Final = 5  # tunnel: bytes are passed through
_FAILED: Final = 6  # refused: every call re-raises the error until reset()

_VERSIONS: Final = {"1.1": b"1.1", "1.0": b"1.0"}
# Lengths of the names of the headers each reader looks at: most names have none of them,
# which spares them lower().
_REQUEST_WATCHED_LENGTHS: Final = frozenset(
    len(name)
    for name in (b"content-length", b"transfer-encoding", b"host", b"expect", b"connection")
)
_RESPONSE_WATCHED_LENGTHS: Final = frozenset(
    len(name) for name in (b"content-length", b"transfer-encoding", b"connection")
)


def _is_token(value: bytes) -> bool:
    return bool(value) and not value.translate(None, TOKEN_CHARS)


class _Reader:
    """What request and response readers share: limits, header checks, event queue.

    The llhttp callbacks run for every header and every message, each at a high fixed cost:
    on_header only stores the pair, and the limits and the headers a proxy must look at are
    checked once per head, in one loop in on_headers_complete. A head that stays open past a
    fed chunk is measured at the end of that chunk (_parse), so the limits hold while it
    streams; so is the framing of a chunked body between two slices of its data, trailers
    included. Trailers are only measured.
    """

    __slots__ = (
        "_begun",
        "_body_left",
        "_chunk",
        "_error",
        "_events",
        "_fed",
        "_framing",
        "_framing_mark",
        "_head_fed",
        "_headers",
        "_keep_alive",
        "_line",
        "_max_head_bytes",
        "_max_headers",
        "_parser",
        "_plain_heads",
        "_size",
        "_sized",
        "_state",
        "_upgrade_left",
        "_upgrading",
    )

    _bad: int  # status for malformed input
    _too_big: int  # status for a head over the limits
    _what: str  # "request" or "response", for error texts
    _parser_type: Any  # the httptools parser class

    def __init__(
        self, max_head_bytes: int = 65536, max_headers: int = 100, plain_heads: bool = True
    ) -> None:
        self._max_head_bytes = max_head_bytes
        self._max_headers = max_headers
        # Whether plain heads are read without llhttp (see plain_head); False only to compare.
        self._plain_heads = plain_heads
        # A list, not a deque: it rarely holds more than a few events, and an empty deque
        # costs ten times the memory, on every one of thousands of idle connections.
        self._events: list[Event] = []
        self._start()

    def reset(self) -> None:
        """Drop all state, including a pending error, and start on a fresh parser."""
        self._start()

    def next_event(self) -> Event | None:
        """The next event, or None when more bytes are needed."""
        events = self._events
        return events.pop(0) if events else None

    def ends_next(self) -> bool:
        """Whether the next event is the end of a message (a bodiless message's end)."""
        events = self._events
        return bool(events) and events[0] is END_OF_MESSAGE

    def refusal(self) -> HttpError | None:
        """The error that refused this input, if one did."""
        return self._error if self._state == _FAILED else None

    def in_head(self) -> bool:
        """Whether part of a head has arrived and the rest has not."""
        return self._state == _HEAD

    # -- state -----------------------------------------------------------------

    def _start(self) -> None:
        # Made when the first bytes arrive (see _parse).
        self._parser: httptools.HttpRequestParser | httptools.HttpResponseParser | None = None
        self._events.clear()
        self._error: HttpError | None = None
        self._state = _IDLE
        self._begun = 0
        self._chunk = b""
        self._fed = 0
        self._head_fed = 0
        self._keep_alive = True
        self._upgrading = False
        self._upgrade_left = 0
        # Header lines of the head, then of the trailers, in arrival order.
        self._headers: list[tuple[bytes, bytes]] = []
        self._line = b""
        self._size = 0
        self._sized = 0
        # Bytes of a Content-Length response body still to come. Every slice of body lowers
        # it, in both readers, so that _parse sees whether the body moved in a fed chunk.
        self._body_left = 0
        self._framing = 0
        self._framing_mark = 0

    def _fail(self, status: int, reason: str) -> NoReturn:
        error = HttpError(status, reason)
        self._error = error
        self._state = _FAILED
        self._events.clear()  # a refused input yields nothing, not even what preceded it
        raise error

    # -- feeding ---------------------------------------------------------------

    def _bypass(self, data: bytes) -> None:
        """Feeding in the states where llhttp is no longer used."""
        state = self._state
        if state == _UPGRADED:
            if data:
                self._events.append(Upgraded(data))
        elif state == _UPGRADE_BODY:
            self._upgrade_body(data)
        elif state == _FAILED:
            error = self._error
            assert error is not None
            raise HttpError(error.status, error.reason)
        # _DONE: the peer said this was its last message; what follows is ignored.

    def _parse(self, data: bytes) -> None:
        before = self._state
        self._begun = 0
        self._fed = len(data)
        parser = self._parser
        if parser is None:
            parser = self._parser = self._parser_type(self)
        # A chunk fed between messages starts with the first message's head (see
        # _version_from_chunk); held only while it is parsed.
        self._chunk = data if before == _IDLE else b""
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._tunnel(data[upgrade.args[0] :])
            return
        except httptools.HttpParserError as exc:
            if self._error is None:
                if self._state == _DONE:
                    return  # bytes after a "last" message: llhttp refuses them, we ignore them
                self._error = self._map_error(exc, data, before)
            self._state = _FAILED
            self._events.clear()
            raise HttpError(self._error.status, self._error.reason) from None
        finally:
            self._chunk = b""
        state = self._state
        if state == _HEAD:
            self._head_continues(data)
        elif state == _BODY:
            # Inline, not a method: this runs for every fed chunk of a body.
            left = self._body_left
            if left != self._framing_mark or before != _BODY or self._begun:
                # Body data arrived, or the head ended, in this chunk: it is bounded by the
                # read size and not counted, like the chunk in which a head begins.
                self._framing_mark = left
                self._framing = 0
            else:
                # No data at all: a chunk-size line, an extension or trailers go on.
                framing = self._framing + len(data)
                self._framing = framing
                if framing > self._max_head_bytes:
                    self._fail(self._too_big, f"{self._what} head too large")
            if self._headers and self._counted_size() > self._max_head_bytes:
                self._fail(self._too_big, f"{self._what} head too large")  # trailers going on

    def _head_continues(self, data: bytes) -> None:
        """The head goes on past ``data``: the limits must hold while it streams."""
        # A header value arriving in slices is held by httptools until it ends, out of
        # sight of on_header: count what was fed while the head stays open. The chunk
        # in which the message began is not counted (it is bounded by the read size).
        if self._begun:
            self._head_fed = 0
        else:
            self._head_fed += len(data)
            if self._head_fed > self._max_head_bytes:
                self._fail(self._too_big, f"{self._what} head too large")
        if not self._sized:
            self._size = 0  # nothing of this head was measured yet
        if self._counted_size() + len(self._line) > self._max_head_bytes:
            self._fail(self._too_big, f"{self._what} head too large")

    def _counted_size(self) -> int:
        """Size of the header lines so far (for trailers: of the head and the trailers);
        each call measures only the lines that arrived since the last one (see _sized)."""
        headers = self._headers
        sized = self._sized
        if len(headers) > sized:
            self._size += _pairs_size(headers[sized:])
            self._sized = len(headers)
        return self._size

    def _map_error(self, exc: Exception, data: bytes, state: int) -> HttpError:
        return HttpError(self._bad, f"malformed {self._what}: {exc}")

    def _tunnel(self, rest: bytes) -> None:
        if self._upgrade_left:
            self._state = _UPGRADE_BODY
            self._upgrade_body(rest)
        else:
            self._state = _UPGRADED
            self._events.append(Upgraded(rest))

    def _upgrade_body(self, data: bytes) -> None:
        # llhttp skips the body of an upgrade request: it is cut from the tunnel bytes here.
        left = self._upgrade_left
        if len(data) < left:
            if data:
                self._events.append(Body(data))
                self._upgrade_left = left - len(data)
            return
        self._upgrade_left = 0
        events = self._events
        events.append(Body(data[:left]))
        events.append(END_OF_MESSAGE)
        self._state = _UPGRADED
        events.append(Upgraded(data[left:]))

    # -- plain heads, read without llhttp (see plain_head) -------------------------

    def _read_plain(self, data: bytes) -> int:
        """Reads the plain messages that start ``data``; returns how many bytes they took."""
        raise NotImplementedError

    def _after_plain(self, data: bytes) -> bytes | None:
        """What llhttp must still read of ``data`` once the plain messages at its start are
        read, or None for nothing: all of it was read, or the last message came before the
        rest, which is then ignored as llhttp's path ignores it."""
        taken = self._read_plain(data)
        if not taken:
            return data
        if taken == len(data) or self._state != _IDLE:
            return None
        return data[taken:]

    def _end_plain(self, data: bytes, end: int, body_end: int, keep_alive: bool) -> None:
        """Queues the body (``data[end:body_end]``, if any) and the end of a plain message
        whose head was queued, as on_body and on_message_complete would."""
        events = self._events
        if body_end > end:
            events.append(Body(data[end:body_end]))
        events.append(END_OF_MESSAGE)
        self._keep_alive = keep_alive
        if not keep_alive:
            self._state = _DONE

    # -- llhttp callbacks --------------------------------------------------------

    def on_message_begin(self) -> None:
        # The header list was made empty when the last head ended (see _end_trailers).
        self._state = _HEAD
        self._begun += 1
        self._line = b""

    def on_header(self, name: bytes, value: bytes) -> None:
        # Runs for every header and trailer: nothing else belongs here (see the class doc).
        self._headers.append((name, value.rstrip(b" \t")))  # llhttp strips leading OWS only

    # -- the head, once complete -------------------------------------------------

    def _exact_head_size(self, headers: list[tuple[bytes, bytes]]) -> int:
        """Size of the head that just ended, as the limit counts it."""
        if self._sized:  # the head arrived in pieces: part of it was measured already
            size = self._size + _pairs_size(headers[self._sized :])
            self._sized = 0  # the trailers are measured from here on, in a list of their own
        else:
            size = _pairs_size(headers)
        return size + len(self._line)

    def _check_head_limits(self, headers: list[tuple[bytes, bytes]]) -> None:
        if (
            self._exact_head_size(headers) > self._max_head_bytes
            or len(headers) > self._max_headers
        ):
            self._refuse_head(headers)

    def _refuse_head(self, headers: list[tuple[bytes, bytes]]) -> NoReturn:
        """Refuses a head over a limit, naming the fault a header-by-header reading of it
        meets first (a size limit or a bad Content-Length before the count limit)."""
        limit = self._max_head_bytes
        size = len(self._line)
        if size > limit:
            self._fail(self._too_big, f"{self._what} head too large")
        lengths = []
        for name, value in headers:
            size += len(name) + len(value) + 4
            if size > limit:
                self._fail(self._too_big, f"{self._what} head too large")
            if name.lower() == b"content-length":
                lengths.append(value)
                self._content_length(lengths)
        self._fail(self._too_big, f"too many {self._what} headers")

    def _content_length(self, values: list[bytes]) -> int:
        value = values[0]
        if len(values) > 1 or not value.isdigit():
            self._fail(self._bad, "invalid Content-Length")
        return int(value)

    def _chunked(
        self,
        version: bytes,
        te_count: int,
        te: bytes | None,
        length: int | None,
        headers: list[tuple[bytes, bytes]],
    ) -> bool:
        """Transfer-Encoding rules shared by both directions, for a head that has one."""
        if version != b"1.1":
            self._fail(self._bad, "Transfer-Encoding on HTTP/1.0")
        if te_count > 1:
            self._fail(self._bad, "repeated Transfer-Encoding")
        if length is not None:
            self._fail(self._bad, "both Content-Length and Transfer-Encoding")
        assert te is not None
        if te.lower() != b"chunked":
            self._fail(self._bad, "unsupported Transfer-Encoding")
        # Trailers may follow, and count on top of the head.
        self._size = self._exact_head_size(headers)
        return True

    def _end_trailers(self) -> None:
        """Trailers are dropped unread; only the limits apply to them."""
        if self._counted_size() > self._max_head_bytes:
            self._fail(self._too_big, f"{self._what} head too large")
        if len(self._headers) > self._max_headers:
            self._fail(self._too_big, f"too many {self._what} headers")
        self._headers = []  # for the next head
        self._sized = 0


class RequestReader(_Reader):
    """Reads the requests a client sends on one connection."""

    __slots__ = ()  # one per client connection: no instance dict

    _bad = 400
    _too_big = 431
    _what = "request"
    _parser_type = httptools.HttpRequestParser

    def _version_from_chunk(self, method: bytes) -> bytes | None:
        """The version of a head that starts ``_chunk``, read from its bytes where that is
        certain, or None: llhttp's answer costs a str.format.

        When the chunk starts with the request line, llhttp (strict) read it as the method, a
        space, the target, a space, then the version and CRLF at a known place. Slices and
        comparisons only: a compiled find() would be a method call."""
        chunk = self._chunk
        start = len(method) + len(self._line) + 1
        if chunk[: len(method)] != method:
            return None
        line_end = chunk[start : start + 11]
        if line_end == b" HTTP/1.1\r\n":
            return b"1.1"
        if line_end == b" HTTP/1.0\r\n":
            return b"1.0"
        return None

    def at_rest(self) -> bool:
        """Between requests with nothing held: from here on it behaves as a new reader would."""
        return (
            self._state == _IDLE
            and self._parser is None
            and self._error is None
            and not self._events
        )

    def feed(self, data: bytes) -> None:
        """Parse ``data``; raises HttpError on malformed or hostile input."""
        if self._state >= _DONE:
            self._bypass(data)
            return
        if self._state == _IDLE and self._plain_heads:
            rest = self._after_plain(data)
            if rest is None:
                return
            data = rest
        self._parse(data)
        if self._state == _IDLE:
            # Between requests llhttp holds nothing a fresh parser lacks, and a parser with its
            # bound callbacks is ~0.9 KB on each of thousands of idle keep-alive connections:
            # drop it; the next request's bytes make a new one (~0.7 µs).
            self._parser = None

    def _read_plain(self, data: bytes) -> int:
        """Reads the plain requests that start ``data``, each whole with its body, without
        llhttp (see plain_head); returns how many bytes they took."""
        taken = 0
        while self._state == _IDLE and taken < len(data):
            size = self._plain_request(data, taken)
            if not size:
                break
            taken += size
        return taken

    def _plain_request(self, data: bytes, start: int) -> int:
        """Reads one plain request at ``start`` as on_headers_complete and on_message_complete
        would; returns its size, or 0 to leave it to llhttp (then nothing was changed)."""
        lines = head_lines(data, start, self._max_head_bytes, self._max_headers)
        if not lines:
            return 0
        first = request_line(lines[0])
        if not first:
            return 0
        colons = header_colons(lines)
        if colons is None:
            return 0
        connection: list[bytes] = []
        length, options, hosts, expect_continue = _plain_fields(lines, colons, connection)
        if length == _NOT_PLAIN or hosts != 1:
            return 0
        end = start + head_size(lines)
        body_end = end + length if length > 0 else end
        if body_end > len(data):
            return 0  # the body goes on past this chunk: llhttp follows it
        version = first[2]
        keep_alive = _plain_keep_alive(version, options)
        self._events.append(
            RequestHead(
                first[0],
                first[1],
                version,
                None,
                keep_alive,
                False,
                length if length >= 0 else None,
                False,
                expect_continue,
                connection,
                lines,
                colons,
                data if body_end == len(data) == end and start == 0 and version == b"1.1" else b"",
            )
        )
        self._end_plain(data, end, body_end, keep_alive)
        return body_end - start

    def feed_eof(self) -> None:
        """The client closed; raises HttpError(400) if a request was cut short."""
        if self._state in (_HEAD, _BODY, _UPGRADE_BODY):
            self._fail(400, "request cut short by end of stream")
        if self._state == _FAILED:
            self._bypass(b"")

    def _map_error(self, exc: Exception, data: bytes, state: int) -> HttpError:
        text = str(exc)
        if isinstance(exc, httptools.HttpParserInvalidMethodError):
            if state == _IDLE and self._begun == 1:
                # The refused request starts this chunk: a token followed by a space is a
                # method llhttp does not know rather than garbage.
                line = data.lstrip(b"\r\n")
                space = line.find(b" ", 0, 33)
                if space > 0 and _is_token(line[:space]):
                    return HttpError(501, "method not implemented")
            return HttpError(400, "invalid method")
        if "HTTP version" in text or "PRI" in text:  # the latter: an HTTP/2 preface
            return HttpError(505, "HTTP version not supported")
        return HttpError(400, f"malformed request: {text}")

    def on_url(self, url: bytes) -> None:
        self._line += url  # measured with the head (see _Reader)

    def on_headers_complete(self) -> None:
        headers = self._headers
        count = len(headers)
        # The limits: a head that began and ended in this chunk is not bigger, as they
        # count it, than the chunk plus 1 byte a line (each line has ":" and CRLF at least).
        if not self._begun or self._fed + count > self._max_head_bytes or count > self._max_headers:
            self._check_head_limits(headers)
        # Each reader has its own copy of this loop, over the names it looks at: a shared
        # helper would cost a call per head on the hot path.
        length = None
        te_count = 0
        te = None
        hosts = 0
        expect_continue = False
        connection: list[bytes] = []
        for name, value in headers:
            if len(name) in _REQUEST_WATCHED_LENGTHS:
                lname = name.lower()
                if lname == b"host":
                    hosts += 1
                elif lname == b"content-length":
                    if length is not None or not value.isdigit():
                        self._fail(400, "invalid Content-Length")
                    length = int(value)
                elif lname == b"connection":
                    connection.append(value)
                elif lname == b"transfer-encoding":
                    te_count += 1
                    te = value
                elif lname == b"expect":
                    expect_continue = value.lower() == b"100-continue"  # the last one counts
        parser: httptools.HttpRequestParser = self._parser  # type: ignore[assignment]
        method = parser.get_method()
        version = self._version_from_chunk(method) if self._begun == 1 else None
        if version is None:
            version = _VERSIONS.get(parser.get_http_version())
        if version is None:
            self._fail(505, "HTTP version not supported")
        if method == b"CONNECT":
            self._fail(405, "CONNECT is not supported")
        chunked = te_count > 0 and self._chunked(version, te_count, te, length, headers)
        if hosts != 1:
            if hosts:
                self._fail(400, "more than one Host header")
            if version == b"1.1":
                self._fail(400, "missing Host header")
        upgrade = parser.should_upgrade()
        if upgrade:
            if chunked:
                self._fail(400, "upgrade request with a chunked body")
            self._upgrading = True
            self._upgrade_left = length or 0
        keep_alive = parser.should_keep_alive()
        self._keep_alive = keep_alive
        self._events.append(
            RequestHead(
                method,
                self._line,
                version,
                headers,
                keep_alive,
                chunked,
                length,
                upgrade,
                expect_continue,
                connection,
            )
        )
        # What follows belongs to the body; trailers land in a list of their own, dropped,
        # which then holds the next head (see _end_trailers).
        self._state = _BODY
        self._headers = []

    def on_body(self, body: bytes) -> None:
        self._body_left -= len(body)  # only read as "the body moved" (see _parse)
        self._events.append(Body(body))

    def on_message_complete(self) -> None:
        if self._headers:
            self._end_trailers()
        if self._upgrading:
            # llhttp pauses right after this; the tunnel starts in _tunnel().
            self._upgrading = False
            if self._upgrade_left:
                return  # the end comes after the body, cut from the tunnel bytes
            self._events.append(END_OF_MESSAGE)
            return
        self._events.append(END_OF_MESSAGE)
        self._state = _IDLE if self._keep_alive else _DONE


class ResponseReader(_Reader):
    """Reads the responses a real server sends on one connection."""

    __slots__ = (
        "_answering_head",
        "_awaiting",
        "_head_answered",
        "_head_tail",
        "_status",
        "_until_close",
    )

    _bad = 502
    _too_big = 502
    _what = "response"
    _parser_type = httptools.HttpResponseParser

    def _version_from_chunk(self) -> bytes | None:
        """The version of a head that starts ``_chunk`` (see RequestReader's), or None."""
        # A status line starts with the version.
        prefix = self._chunk[:9]
        if prefix == b"HTTP/1.1 ":
            return b"1.1"
        if prefix == b"HTTP/1.0 ":
            return b"1.0"
        return None

    def _start(self) -> None:
        self._answering_head = False
        self._head_answered = False
        self._awaiting = False
        self._head_tail = b""
        self._until_close = False
        self._status = 0
        _Reader._start(self)

    def skip_whole(self) -> None:
        """Take the events queued after a head that was taken and whose bytes are all in: its
        body, then its end (they go on as ``ResponseHead.whole``)."""
        events = self._events
        # A plain response read whole is alone in its chunk: its body, then its end.
        if len(events) <= 2 and events and events[-1] is END_OF_MESSAGE:
            events.clear()
            return
        while type(self.next_event()) is Body:
            pass

    def between_messages(self) -> bool:
        """Whether the last response ended cleanly, so the next one can be read as it is."""
        return (
            self._state == _IDLE
            and not self._events
            and not self._awaiting
            and not self._answering_head
            and not self._head_tail
        )

    def body_left(self) -> int:
        """Bytes of a Content-Length body still to come once every event was taken, else 0."""
        if self._state != _BODY or self._events:
            return 0
        # A chunked or read-until-close body starts at 0 and only goes down from there.
        left = self._body_left
        return left if left > 0 else 0

    def take_body_outside(self) -> int:
        """The rest of the body will bypass this reader (spliced from socket to socket): end
        the message as if it had arrived, and say how many bytes it still had to come."""
        left = self.body_left()
        if not left:
            raise ValueError("no Content-Length body is pending")
        self._body_left = 0
        self._awaiting = False
        self._state = _IDLE if self._keep_alive else _DONE
        self._parser = None  # mid-body: the next response needs a fresh one
        return left

    def expect(self, method: bytes) -> None:
        """Announce the method of the request the next final response answers.

        Call it once per request, before sending it. A HEAD answer never has a body;
        every expected response makes feed_eof() refuse an early close.
        """
        self._answering_head = method == b"HEAD"
        self._awaiting = True

    def feed(self, data: bytes) -> None:
        """Parse ``data``; raises HttpError(502) on a malformed response."""
        if self._state >= _DONE:
            self._bypass(data)
        elif self._answering_head:
            self._feed_head_answer(data)
        else:
            if self._state == _IDLE and self._plain_heads:
                rest = self._after_plain(data)
                if rest is None:
                    return
                data = rest
            self._parse(data)

    def _read_plain(self, data: bytes) -> int:
        """Reads a plain final response with a Content-Length body, whole at the start of
        ``data``, as on_headers_complete and on_message_complete would; returns its size, or 0
        to leave it to llhttp (then nothing was changed). One response a chunk: a server sends
        the next only after the next request."""
        lines = head_lines(data, 0, self._max_head_bytes, self._max_headers)
        if not lines:
            return 0
        line = lines[0]
        status = status_code(line)
        # Interim, 204 and 304 answers, and status codes out of range, are llhttp's to read.
        if status < 200 or status > 599 or status == 204 or status == 304:
            return 0
        colons = header_colons(lines)
        if colons is None:
            return 0
        connection: list[bytes] = []
        length, options, _, _ = _plain_fields(lines, colons, connection)
        if length < 0:
            return 0  # a body read until close, or chunked: llhttp follows it
        end = head_size(lines)
        body_end = end + length
        if body_end > len(data):
            return 0
        version = line[5:8]
        keep_alive = _plain_keep_alive(version, options)
        self._events.append(
            ResponseHead(
                status,
                line[13:],
                version,
                None,
                keep_alive,
                False,
                length,
                connection,
                lines,
                colons,
                data if body_end == len(data) else b"",
            )
        )
        self._status = status
        self._awaiting = False
        self._until_close = False
        self._end_plain(data, end, body_end, keep_alive)
        return body_end

    def feed_eof(self) -> None:
        """The real server closed: ends a read-until-close body, or refuses a cut message."""
        state = self._state
        if state == _FAILED:
            self._bypass(b"")
        if state == _BODY and self._until_close:
            self._events.append(END_OF_MESSAGE)
            self._state = _DONE
            self._awaiting = False
            return
        if state in (_HEAD, _BODY):
            self._fail(502, "real server closed the connection mid-response")
        if self._awaiting and state != _UPGRADED:
            self._fail(502, "real server closed the connection without a response")

    def _feed_head_answer(self, data: bytes) -> None:
        # llhttp cannot be told that a response answers HEAD, so it is never fed past the end
        # of the final head, and is replaced there before it takes later bytes as a body.
        # Bare LF is refused by llhttp, so the first CRLFCRLF ends a head.
        while data:
            tail = self._head_tail
            end = (tail + data).find(b"\r\n\r\n")
            if end < 0:
                self._head_tail = (tail + data[-3:])[-3:]
                self._parse(data)
                return
            cut = end + 4 - len(tail)
            self._head_tail = b""
            self._parse(data[:cut])
            data = data[cut:]
            if self._state == _UPGRADED:
                if data:  # the cut fell at the end of a 101 head: the rest is tunnel data
                    self._events[-1] = Upgraded(data)
                return
            if self._head_answered:
                self._head_answered = False
                self._parser = self._parser_type(self)
                if data:
                    self.feed(data)
                return

    def on_status(self, reason: bytes) -> None:
        self._line += reason  # measured with the head (see _Reader)

    def on_headers_complete(self) -> None:
        headers = self._headers
        count = len(headers)
        # The limits: a head that began and ended in this chunk is not bigger, as they
        # count it, than the chunk plus 1 byte a line (each line has ":" and CRLF at least).
        if not self._begun or self._fed + count > self._max_head_bytes or count > self._max_headers:
            self._check_head_limits(headers)
        # Each reader has its own copy of this loop, over the names it looks at: a shared
        # helper would cost a call per head on the hot path.
        length = None
        te_count = 0
        te = None
        connection: list[bytes] = []
        for name, value in headers:
            if len(name) in _RESPONSE_WATCHED_LENGTHS:
                lname = name.lower()
                if lname == b"content-length":
                    if length is not None or not value.isdigit():
                        self._fail(502, "invalid Content-Length")
                    length = int(value)
                elif lname == b"connection":
                    connection.append(value)
                elif lname == b"transfer-encoding":
                    te_count += 1
                    te = value
        parser: httptools.HttpResponseParser = self._parser  # type: ignore[assignment]
        version = self._version_from_chunk() if self._begun == 1 else None
        if version is None:
            version = _VERSIONS.get(parser.get_http_version())
        if version is None:
            self._fail(502, "unsupported HTTP version in response")
        status = parser.get_status_code()
        if not 100 <= status <= 599:
            self._fail(502, "invalid response status")
        chunked = te_count > 0 and self._chunked(version, te_count, te, length, headers)
        if status == 101 and not parser.should_upgrade():
            self._fail(502, "101 response without Upgrade")
        self._status = status
        if status >= 200 and self._answering_head:
            keep_alive = _keep_alive(version, connection)
            events = self._events
            events.append(
                ResponseHead(
                    status,
                    self._line,
                    version,
                    headers,
                    keep_alive,
                    chunked,
                    length,
                    connection,
                )
            )
            events.append(END_OF_MESSAGE)
            self._headers = []  # for the next head
            self._answering_head = False
            self._awaiting = False
            self._head_answered = True
            self._state = _IDLE if keep_alive else _DONE
            return
        keep_alive = parser.should_keep_alive()
        self._keep_alive = keep_alive
        self._body_left = length or 0
        self._until_close = (
            length is None and not chunked and status >= 200 and status != 204 and status != 304
        )
        self._events.append(
            ResponseHead(
                status,
                self._line,
                version,
                headers,
                keep_alive,
                chunked,
                length,
                connection,
            )
        )
        # What follows belongs to the body; trailers land in a list of their own, dropped,
        # which then holds the next head (see _end_trailers).
        self._state = _BODY
        self._headers = []

    def on_body(self, body: bytes) -> None:
        if not self._head_answered:
            self._body_left -= len(body)
            self._events.append(Body(body))

    def on_message_complete(self) -> None:
        if self._head_answered:
            return  # already ended in on_headers_complete
        if self._headers:
            self._end_trailers()
        self._events.append(END_OF_MESSAGE)
        status = self._status
        if status >= 200:
            self._awaiting = False
            self._until_close = False
            self._state = _IDLE if self._keep_alive else _DONE
        elif status == 101:
            self._awaiting = False  # llhttp pauses right after this; see _tunnel()
        else:
            self._state = _IDLE  # interim response: the final one follows


_NOT_PLAIN: Final = -2


def _plain_fields(
    lines: list[bytes], colons: list[int], connection: list[bytes]
) -> tuple[int, int, int, bool]:
    """What plain heads tell by their header lines (see plain_head.header_colons): the
    Content-Length (-1 for none), the Connection options (their values appended to
    ``connection``), the number of Host headers and whether the last Expect asks for
    100-continue. A length of _NOT_PLAIN leaves the head to llhttp."""
    length = -1
    options = 0
    hosts = 0
    expect_continue = False
    for index in range(len(colons)):
        line = lines[index + 1]
        colon = colons[index]
        kind = header_kind(line, colon)
        if kind == OTHER:
            continue
        if kind == HOST:
            hosts += 1
        elif kind == CONTENT_LENGTH:
            if length >= 0:
                return _NOT_PLAIN, 0, 0, False
            length = decimal(header_value(line, colon))
            if length < 0:
                return _NOT_PLAIN, 0, 0, False
        elif kind == CONNECTION:
            value = header_value(line, colon)
            option = connection_option(value)
            if not option:
                return _NOT_PLAIN, 0, 0, False
            options |= option
            connection.append(value)
        elif kind == EXPECT:
            expect_continue = header_value(line, colon).lower() == b"100-continue"
        else:
            return _NOT_PLAIN, 0, 0, False
    return length, options, hosts, expect_continue


def _plain_keep_alive(version: bytes, options: int) -> bool:
    """Persistence after plain Connection options, as llhttp decides it: on HTTP/1.1 any
    "close" ends the connection, on 1.0 any "keep-alive" keeps it."""
    if version == b"1.1":
        return not options & CLOSE
    return bool(options & KEEP_ALIVE)


def _keep_alive(version: bytes, connection: list[bytes]) -> bool:
    """Persistence from Connection headers alone, for bodiless answers to HEAD."""
    tokens = {token.strip().lower() for value in connection for token in value.split(b",")}
    if version == b"1.1":
        return b"close" not in tokens
    return b"keep-alive" in tokens
